import HeraldStorage
import NIOCore

extension EventHub {
    /// Log reads a join makes before it gives up on catching the window.
    static let replayAttempts = 5

    /// Adds a stream like ``subscribe(_:origin:lastEventID:older:olderThrough:forceResync:sink:)``,
    /// with the part of the replay older than the window read from `log` first, and joins on the
    /// sink's event loop, so nothing the sink writes overtakes what its transport sent before.
    /// If the window moves past what was read meanwhile, the log is read again; when events keep
    /// arriving faster than that, the stream joins with `resync` and the client reloads.
    public func join(
        _ caller: Caller,
        channels: Set<String> = [],
        origin: String?,
        lastEventID: UInt64?,
        log: EventLog,
        sink: any StreamSink
    ) async throws -> Joined {
        for _ in 0..<Self.replayAttempts {
            let end = lastEventID.flatMap { logReplayEnd(after: $0) }
            var read: [Entry] = []
            if let lastEventID, let end { read = try await log.entries(after: lastEventID, through: end) }
            let older = read
            let joined = try await sink.eventLoop.run {
                self.subscribe(
                    caller,
                    channels: channels,
                    origin: origin,
                    lastEventID: lastEventID,
                    older: older,
                    olderThrough: end,
                    sink: sink
                )
            }
            if let joined { return joined }
        }
        return try await sink.eventLoop.run {
            // With `forceResync` and no log read the hub always takes the stream.
            self.subscribe(
                caller,
                channels: channels,
                origin: origin,
                lastEventID: lastEventID,
                forceResync: true,
                sink: sink
            )!
        }
    }

}

extension EventLoop {
    /// `body` on this loop: at once when the caller runs here (a task on the loop's executor),
    /// else submitted and awaited.
    package func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        if inEventLoop { return try body() }
        return try await submit(body).get()
    }
}
