import Metrics
import NIOCore
import Synchronization

/// The streams that live on one event loop, and the work the hub handed that loop.
///
/// The hub appends operations (publish, add, remove) under its lock, so each loop sees them in
/// publish order; the loop runs them in one pass. Events published while the loop was busy are
/// written together: consecutive events for the same audience go to each stream as one write.
final class LoopShard: Sendable {
    enum Operation {
        case publish(ServerEvent, ByteBuffer, Audience)
        case add(Stream, resync: Bool, replay: [ServerEvent], encoded: ByteBuffer)
        case remove(id: Int, end: Bool)
    }

    struct Stream {
        var id: Int
        var sink: any StreamSink
        var userID: String?
        var authenticated: Bool
        var channels: Set<String>
    }

    /// Streams in a dense array for fast iteration, with their positions for O(1) removal.
    struct StreamSet {
        var streams: ContiguousArray<Stream> = []
        var positions: [Int: Int] = [:]

        var isEmpty: Bool { streams.isEmpty }

        mutating func insert(_ stream: Stream) {
            positions[stream.id] = streams.count
            streams.append(stream)
        }

        @discardableResult
        mutating func remove(_ id: Int) -> Stream? {
            guard let position = positions.removeValue(forKey: id) else { return nil }
            let removed = streams[position]
            let last = streams.removeLast()
            if position < streams.count {
                streams[position] = last
                positions[last.id] = position
            }
            return removed
        }
    }

    struct Streams {
        var all: [Int: Stream] = [:]
        var authenticated = StreamSet()
        var anonymous = StreamSet()
        var byUser: [String: StreamSet] = [:]
        var byChannel: [String: StreamSet] = [:]
    }

    struct Inbox: ~Copyable {
        var operations: [Operation] = []
        var scheduled = false
        var lastRun = NIODeadline.distantPast
    }

    let eventLoop: any EventLoop
    /// The shortest time between two runs of the loop's work (see ``submit(_:)``).
    let batchInterval: TimeAmount
    private let inbox = Mutex(Inbox())
    private let streams: NIOLoopBoundBox<Streams>
    private let metrics: HubMetrics
    /// Tells the hub about streams dropped here (their readers fell behind).
    private let dropped: @Sendable ([Int]) -> Void

    init(
        eventLoop: any EventLoop,
        batchInterval: TimeAmount,
        metrics: HubMetrics,
        dropped: @escaping @Sendable ([Int]) -> Void
    ) {
        self.eventLoop = eventLoop
        self.batchInterval = batchInterval
        self.streams = .makeBoxSendingValue(Streams(), as: Streams.self, eventLoop: eventLoop)
        self.metrics = metrics
        self.dropped = dropped
    }

    func publish(_ event: ServerEvent, encoded: ByteBuffer, to audience: Audience) {
        submit(.publish(event, encoded, audience))
    }

    func add(
        id: Int,
        sink: any StreamSink,
        userID: String?,
        authenticated: Bool,
        channels: Set<String>,
        resync: Bool,
        replay: [ServerEvent],
        encoded: ByteBuffer
    ) {
        let stream = Stream(id: id, sink: sink, userID: userID, authenticated: authenticated, channels: channels)
        submit(.add(stream, resync: resync, replay: replay, encoded: encoded))
    }

    /// Removes a stream; with `end`, its sink is told the hub ended it.
    func remove(id: Int, end: Bool) {
        submit(.remove(id: id, end: end))
    }

    /// Hands `operation` to the loop. A loop that ran less than `batchInterval` ago runs again
    /// when the interval is up, so under load every stream gets one write per interval carrying
    /// everything published meanwhile; a lone event goes out at once.
    private func submit(_ operation: Operation) {
        let due = inbox.withLock { inbox -> NIODeadline? in
            inbox.operations.append(operation)
            if inbox.scheduled { return nil }
            inbox.scheduled = true
            return inbox.lastRun + batchInterval
        }
        guard let due else { return }
        if due <= .now() {
            eventLoop.execute { self.run() }
        } else {
            eventLoop.scheduleTask(deadline: due) { self.run() }
        }
    }

    /// Runs what the hub handed over, on the loop.
    private func run() {
        let operations = inbox.withLock { inbox -> [Operation] in
            inbox.scheduled = false
            inbox.lastRun = .now()
            defer { inbox.operations = [] }
            return inbox.operations
        }
        var index = 0
        while index < operations.count {
            switch operations[index] {
            case .publish(let event, let encoded, let audience):
                // Events published back to back for the same audience go out as one write.
                var events = [event]
                var combined = encoded
                while index + 1 < operations.count, case .publish(let next, let bytes, audience) = operations[index + 1]
                {
                    events.append(next)
                    combined.writeImmutableBuffer(bytes)
                    index += 1
                }
                deliver(combined, events: events, to: audience)
            case .add(let stream, let resync, let replay, let encoded):
                add(stream, resync: resync, replay: replay, encoded: encoded)
            case .remove(let id, let end):
                if let stream = detach(id), end { stream.sink.end() }
            }
            index += 1
        }
    }

    private func add(_ stream: Stream, resync: Bool, replay: [ServerEvent], encoded: ByteBuffer) {
        streams.value.all[stream.id] = stream
        if stream.authenticated {
            streams.value.authenticated.insert(stream)
        } else {
            streams.value.anonymous.insert(stream)
        }
        if let user = stream.userID { streams.value.byUser[user, default: StreamSet()].insert(stream) }
        for channel in stream.channels { streams.value.byChannel[channel, default: StreamSet()].insert(stream) }
        stream.sink.open(resync: resync)
        if !replay.isEmpty, !stream.sink.write(EncodedEvents(replay, bytes: encoded), flush: true) {
            drop([stream.id])
        }
    }

    @discardableResult
    private func detach(_ id: Int) -> Stream? {
        guard let stream = streams.value.all.removeValue(forKey: id) else { return nil }
        if stream.authenticated {
            streams.value.authenticated.remove(id)
        } else {
            streams.value.anonymous.remove(id)
        }
        if let user = stream.userID {
            streams.value.byUser[user]?.remove(id)
            if streams.value.byUser[user]?.isEmpty == true { streams.value.byUser[user] = nil }
        }
        for channel in stream.channels {
            streams.value.byChannel[channel]?.remove(id)
            if streams.value.byChannel[channel]?.isEmpty == true { streams.value.byChannel[channel] = nil }
        }
        return stream
    }

    private func deliver(_ encoded: ByteBuffer, events: [ServerEvent], to audience: Audience) {
        let encoded = EncodedEvents(events, bytes: encoded)
        var written = 0
        var slow: [Int] = []
        // Streams whose readers are behind go last: healthy streams get their bytes first.
        var backedUp: [Stream] = []
        func write(_ stream: Stream) {
            if stream.sink.write(encoded, flush: true) {
                written += 1
            } else {
                slow.append(stream.id)
            }
        }
        func write(_ set: StreamSet) {
            for stream in set.streams {
                if stream.sink.isBackedUp { backedUp.append(stream) } else { write(stream) }
            }
        }
        switch audience {
        case .users(let users):
            for user in users { if let set = streams.value.byUser[user] { write(set) } }
        case .broadcast(let authenticated, let anonymous):
            // A stream is in one of the two sets, so nothing is delivered twice.
            if authenticated { write(streams.value.authenticated) }
            if anonymous { write(streams.value.anonymous) }
        case .channel(let channel):
            // One lookup, however many channels there are.
            if let set = streams.value.byChannel[channel] { write(set) }
        case .changes: break
        }
        for stream in backedUp { write(stream) }
        metrics.deliveries.increment(by: written * events.count)
        if !slow.isEmpty { drop(slow) }
    }

    private func drop(_ ids: [Int]) {
        for id in ids { detach(id) }
        dropped(ids)
    }
}
