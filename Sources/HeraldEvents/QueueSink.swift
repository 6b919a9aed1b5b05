import NIOCore

/// A sink that queues events for an in-process reader (``EventHub/Subscription``).
final class QueueSink: StreamSink {
    let eventLoop: any EventLoop
    let queue: StreamQueue

    init(eventLoop: any EventLoop, queue: StreamQueue) {
        self.eventLoop = eventLoop
        self.queue = queue
    }

    func open(resync: Bool) {}

    func write(_ events: EncodedEvents, flush: Bool) -> Bool {
        for event in events.events where !queue.push(event) { return false }
        return true
    }

    func end() { queue.close() }
}
