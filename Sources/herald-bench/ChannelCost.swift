import Foundation
import HeraldEvents

/// `channel-cost`: what a `$.publish` to one channel costs on the fan-out, with few channels
/// open and with many. The hub is in process; every channel has one subscriber, and the
/// publishes go to one of them. A cost that does not grow with the number of channels gives a
/// ratio near 1.
extension HeraldBench {
    struct ChannelCostResult {
        var channels: [Int]
        var publishes: Int
        /// CPU µs per publish (until the subscriber has it), per channel count, median of rounds.
        var cpu: [Double]

        var table: String {
            var rows = "| channels open (one subscriber each) | CPU µs / publish to one channel |\n|---|---|\n"
            for (count, value) in zip(channels, cpu) { rows += "| \(count) | \(String(format: "%.2f", value)) |\n" }
            let ratio = cpu.last! / cpu.first!
            return rows + "| ratio, most to fewest | \(String(format: "%.3f", ratio)) (target: does not grow, ≈ 1) |"
        }

        var json: String {
            let pairs = zip(channels, cpu).map { "\"\($0)\": \($1)" }.joined(separator: ", ")
            return """
                {"scenario": "channel-cost", "publishes": \(publishes), "cpuMicrosecondsPerPublish": {\(pairs)}, \
                "ratio": \(cpu.last! / cpu.first!)}
                """
        }
    }

    static func channelCost(channels: [Int], publishes: Int, rounds: Int) async -> ChannelCostResult {
        var medians: [Double] = []
        for count in channels {
            var limits = EventHub.Limits()
            limits.queueEvents = publishes + 1
            limits.queueBytes = 1 << 30
            limits.batchInterval = .zero
            let hub = EventHub(limits: limits)
            let others = (1..<count).map { hub.subscribe(.anonymous, channels: ["room:\($0)"]) }
            let target = hub.subscribe(.anonymous, channels: ["room:0"])
            var samples: [Double] = []
            for _ in 0..<rounds {
                let before = BenchServer.cpuMicroseconds()
                for index in 0..<publishes { hub.publish(type: "line", data: "\(index)", to: .channel("room:0")) }
                var received = 0
                while received < publishes, let batch = await target.next() { received += batch.count }
                samples.append(Double(BenchServer.cpuMicroseconds() - before) / Double(publishes))
            }
            target.cancel()
            for subscription in others { subscription.cancel() }
            medians.append(samples.sorted()[samples.count / 2])
        }
        return ChannelCostResult(channels: channels, publishes: publishes, cpu: medians)
    }
}
