import AsyncHTTPClient
import Foundation
import HeraldServer
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Benchmarks measured against a baseline run in the same invocation (`channel-cost` is in
/// `ChannelCost.swift`).
///
/// `hook-cost`: REST creates against a server whose type has a trivial `onCreate` hook, and
/// against the same server without it. The cost of a request is the process CPU time (server
/// and client together, so the client's share cancels out) divided by the requests sent; the
/// difference is what the hook adds.
@main
struct HeraldBench {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        let quick = arguments.contains("--quick")
        let output = arguments.first { $0.hasPrefix("--output=") }.map { String($0.dropFirst(9)) }
        let requests = quick ? 300 : 3000
        let rounds = quick ? 2 : 5
        let result = try await hookCost(requests: requests, rounds: rounds, concurrency: 8)
        print(result.table)
        let channels = await channelCost(
            channels: [10, quick ? 2000 : 10_000],
            publishes: quick ? 5000 : 50_000,
            rounds: quick ? 3 : 5
        )
        print(channels.table)
        if let output {
            let text = "[" + result.json.description + ",\n" + channels.json + "]\n"
            try Data(text.utf8).write(to: URL(fileURLWithPath: output))
            print("results written to \(output)")
        }
    }

    struct Round {
        var cpuMicroseconds: Double
        var wallSeconds: Double
    }

    struct HookCostResult {
        var requests: Int
        var rounds: Int
        var withoutHook: [Round]
        var withHook: [Round]

        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        }

        var baseCPU: Double { median(withoutHook.map(\.cpuMicroseconds)) }
        var hookCPU: Double { median(withHook.map(\.cpuMicroseconds)) }
        var baseRate: Double { Double(requests) / median(withoutHook.map(\.wallSeconds)) }
        var hookRate: Double { Double(requests) / median(withHook.map(\.wallSeconds)) }

        var table: String {
            func f(_ v: Double) -> String { String(format: "%.1f", v) }
            return """
                | scenario: REST create | CPU µs / request (median of \(rounds)) | creates / s |
                |---|---|---|
                | no hook (baseline) | \(f(baseCPU)) | \(f(baseRate)) |
                | trivial onCreate hook | \(f(hookCPU)) | \(f(hookRate)) |
                | added by the hook | \(f(hookCPU - baseCPU)) (target ≤ 50) | ratio \(String(format: "%.3f", hookCPU / baseCPU)) |
                """
        }

        var json: String {
            """
            {"scenario": "hook-cost", "requests": \(requests), "rounds": \(rounds), \
            "baselineCpuMicrosecondsPerRequest": \(baseCPU), "hookCpuMicrosecondsPerRequest": \(hookCPU), \
            "addedMicrosecondsPerRequest": \(hookCPU - baseCPU), "targetMicroseconds": 50, \
            "baselineCreatesPerSecond": \(baseRate), "hookCreatesPerSecond": \(hookRate)}
            """
        }
    }

    static func hookCost(requests: Int, rounds: Int, concurrency: Int) async throws -> HookCostResult {
        let item = #"{"properties": {"name": "string"}}"#
        let plain = try await BenchServer.start(files: ["Item.json": item])
        let hooked = try await BenchServer.start(files: [
            "Item.json": item, "Item/onCreate.js": "{ let name = $.this.name; }",
        ])
        defer {
            Task {
                try? await plain.stop()
                try? await hooked.stop()
            }
        }
        _ = try await plain.post(count: requests / 5, concurrency: concurrency)
        _ = try await hooked.post(count: requests / 5, concurrency: concurrency)
        var result = HookCostResult(requests: requests, rounds: rounds, withoutHook: [], withHook: [])
        for _ in 0..<rounds {
            result.withoutHook.append(try await plain.post(count: requests, concurrency: concurrency))
            result.withHook.append(try await hooked.post(count: requests, concurrency: concurrency))
        }
        return result
    }
}

/// A Herald server in this process on a temporary folder and an ephemeral port.
final class BenchServer: Sendable {
    let root: URL
    let port: Int
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(root: URL, port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.root = root
        self.port = port
        self.group = group
        self.task = task
    }

    static func start(files: [String: String]) async throws -> BenchServer {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("herald-bench-\(UUID().uuidString)")
        for (path, content) in files {
            let url = root.appendingPathComponent("schema").appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(),
                withIntermediateDirectories: true
            )
            try Data(content.utf8).write(to: url)
        }
        var configuration = HeraldConfiguration()
        configuration.schemaDirectory = root.appendingPathComponent("schema").path
        configuration.dataDirectory = root.appendingPathComponent("data").path
        configuration.port = 0
        configuration.superuserPassword = "bench"
        configuration.logLevel = .error
        configuration.schemaReloadInterval = 0
        var logger = Logger(label: "herald.bench")
        logger.logLevel = .error
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = try await HeraldServer.makeApplication(configuration: configuration, logger: logger) { port in
            continuation.yield(port)
            continuation.finish()
        }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        return BenchServer(root: root, port: port, group: group, task: task)
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
        try? FileManager.default.removeItem(at: root)
    }

    /// Sends `count` creates over `concurrency` connections; returns CPU µs per request and wall time.
    func post(count: Int, concurrency: Int) async throws -> HeraldBench.Round {
        let cpuBefore = Self.cpuMicroseconds()
        let started = ContinuousClock.now
        let url = "http://127.0.0.1:\(port)/structr/rest/Item"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var i = worker
                    while i < count {
                        var request = HTTPClientRequest(url: url)
                        request.method = .POST
                        request.headers.add(name: "X-User", value: "superuser")
                        request.headers.add(name: "X-Password", value: "bench")
                        request.body = .bytes(ByteBuffer(string: #"{"name": "item \#(i)"}"#))
                        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                        _ = try await response.body.collect(upTo: 1 << 16)
                        guard response.status == .created else {
                            throw BenchError("create answered \(response.status)")
                        }
                        i += concurrency
                    }
                }
            }
            try await group.waitForAll()
        }
        let wall = ContinuousClock.now - started
        let cpu = Double(Self.cpuMicroseconds() - cpuBefore) / Double(count)
        return HeraldBench.Round(
            cpuMicroseconds: cpu,
            wallSeconds: Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        )
    }

    static func cpuMicroseconds() -> Int64 {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000
            + Int64(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
