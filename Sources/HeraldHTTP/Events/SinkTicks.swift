import NIOCore
import Synchronization

/// The ticks of open sinks: one repeated task per event loop with open sinks, where each sink
/// had a timer of its own.
///
/// A timer per stream put thousands of tasks in each loop's schedule, and NIO cancels a scheduled
/// task by searching that whole schedule: every connection's request timer paid for every open
/// stream. A pass over a loop's sinks every `interval` does the same work with one task.
final class SinkTicks: Sendable {
    /// How often each sink is ticked.
    let interval: TimeAmount
    private let loops = Mutex<[ObjectIdentifier: NIOLoopBound<LoopTicks>]>([:])

    init(interval: TimeAmount) {
        self.interval = interval
    }

    /// Starts ticking `sink`, on its event loop.
    func add(_ sink: ChannelSink) {
        sink.eventLoop.assertInEventLoop()
        ticks(on: sink.eventLoop).add(sink)
    }

    /// Stops ticking `sink`, on its event loop.
    func remove(_ sink: ChannelSink) {
        sink.eventLoop.assertInEventLoop()
        ticks(on: sink.eventLoop).remove(sink)
    }

    private func ticks(on eventLoop: any EventLoop) -> LoopTicks {
        let interval = self.interval
        return loops.withLock { loops in
            let key = ObjectIdentifier(eventLoop)
            if let ticks = loops[key] { return ticks }
            let ticks = NIOLoopBound(LoopTicks(eventLoop: eventLoop, interval: interval), eventLoop: eventLoop)
            loops[key] = ticks
            return ticks
        }.value
    }

    /// The sinks of one loop and the task that ticks them while there are any. Confined to the loop.
    final class LoopTicks {
        let eventLoop: any EventLoop
        let interval: TimeAmount
        /// Each sink knows its position (``ChannelSink/tickPosition``), for removal in O(1).
        private var sinks: [ChannelSink] = []
        private var task: RepeatedTask?

        init(eventLoop: any EventLoop, interval: TimeAmount) {
            self.eventLoop = eventLoop
            self.interval = interval
        }

        func add(_ sink: ChannelSink) {
            guard sink.tickPosition == nil else { return }
            sink.tickPosition = sinks.count
            sinks.append(sink)
            if task == nil {
                let ticks = NIOLoopBound(self, eventLoop: eventLoop)
                task = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                    ticks.value.tick()
                }
            }
        }

        func remove(_ sink: ChannelSink) {
            guard let position = sink.tickPosition, position < sinks.count, sinks[position] === sink else { return }
            sink.tickPosition = nil
            let last = sinks.removeLast()
            if position < sinks.count {
                sinks[position] = last
                last.tickPosition = position
            }
            if sinks.isEmpty {
                task?.cancel()
                task = nil
            }
        }

        private func tick() {
            let now = NIODeadline.now()
            // From the end: a sink that ends in its tick is replaced by one already ticked.
            var position = sinks.count - 1
            while position >= 0 {
                if position < sinks.count { sinks[position].tick(now: now) }
                position -= 1
            }
        }
    }
}
