import Synchronization

/// The events waiting for an in-process reader, bounded in count and bytes.
///
/// A reader that falls behind past either bound has its stream closed rather than allowed to
/// grow. The reader takes everything queued at once.
public final class StreamQueue: Sendable {
    struct State {
        var events: [ServerEvent] = []
        var bytes = 0
        var closed = false
        var overflowed = false
        var waiter: CheckedContinuation<[ServerEvent]?, Never>?
    }

    let maxEvents: Int
    let maxBytes: Int
    private let state = Mutex(State())

    public init(maxEvents: Int, maxBytes: Int) {
        self.maxEvents = maxEvents
        self.maxBytes = maxBytes
    }

    /// Queues `event`; false (and the queue closes) when that would pass a bound.
    @discardableResult
    func push(_ event: ServerEvent) -> Bool {
        let (accepted, waiter, batch) = state.withLock {
            state -> (Bool, CheckedContinuation<[ServerEvent]?, Never>?, [ServerEvent]?) in
            guard !state.closed else { return (false, nil, nil) }
            let size = event.type.utf8.count + event.data.utf8.count + 32
            if state.events.count + 1 > maxEvents || state.bytes + size > maxBytes {
                state.closed = true
                state.overflowed = true
                state.events = []
                state.bytes = 0
                let waiter = state.waiter
                state.waiter = nil
                return (false, waiter, nil)
            }
            if let waiter = state.waiter {
                state.waiter = nil
                return (true, waiter, [event])
            }
            state.events.append(event)
            state.bytes += size
            return (true, nil, nil)
        }
        waiter?.resume(returning: batch)
        return accepted
    }

    /// Everything queued, waiting for at least one event; nil once closed (after what was queued).
    public func next() async -> [ServerEvent]? {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> [ServerEvent]?? in
                if !state.events.isEmpty {
                    let batch = state.events
                    state.events = []
                    state.bytes = 0
                    return .some(batch)
                }
                if state.closed { return .some(nil) }
                state.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Ends the stream; a waiting writer wakes with nil.
    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<[ServerEvent]?, Never>? in
            state.closed = true
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Whether the queue was closed because its reader fell behind.
    public var overflowed: Bool { state.withLock { $0.overflowed } }
}
