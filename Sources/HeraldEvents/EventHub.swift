import HeraldSchema
import HeraldStorage
import Metrics
import NIOCore
import NIOPosix
import Synchronization

/// Fans events out to the open streams that may receive them, and keeps the newest events of
/// the log (``EventLog``) in memory for clients that reconnect with `Last-Event-ID`.
///
/// Streams live in one shard per event loop (see ``LoopShard``): publishing encodes an event once
/// and hands it to each loop, which writes it to its own streams with no further hop. Shards
/// index streams by user, so a targeted send touches only that user's streams; broadcast sets
/// are kept apart for authenticated and anonymous clients. Ids come from the log, which hands
/// committed entries over in commit order (``deliver(_:)``); replay reaches back through the
/// window in memory and, past it, through the log.
public final class EventHub: Sendable {
    /// How much history to keep, and how large a stream's queue may grow.
    public struct Limits: Sendable {
        /// What the log keeps for replay: at most this many events, none older.
        public var historyCount = 10_000
        public var historyAge: Duration = .seconds(3600)
        /// The newest events kept in memory; replay older than them reads the log.
        public var windowCount = 1000
        public var queueEvents = 1000
        public var queueBytes = 1 << 20
        /// Under load, how often each stream gets a write carrying everything published since
        /// its last one; a lone event is written at once.
        public var batchInterval: Duration = .milliseconds(5)

        public init() {}
    }

    /// One published event with who it was for and when.
    public struct Entry: Sendable, Hashable {
        public var event: ServerEvent
        public var audience: Audience
        public var created: Timestamp

        public init(event: ServerEvent, audience: Audience, created: Timestamp) {
            self.event = event
            self.audience = audience
            self.created = created
        }
    }

    struct Member {
        var shard: LoopShard
        var userID: String?
        /// What opened the stream (a login session's key), so ending that closes the stream.
        var origin: String?
        var channels: Set<String>
    }

    struct State {
        var lastID: UInt64 = 0
        var nextSubscriber = 0
        var members: [Int: Member] = [:]
        /// How many streams each user has open.
        var userStreams: [String: Int] = [:]
        /// How many streams subscribe to each channel.
        var channelStreams: [String: Int] = [:]
        /// One shard per event loop, with how many streams it holds.
        var shards: [ObjectIdentifier: (shard: LoopShard, streams: Int)] = [:]
        /// The window: the newest delivered entries, oldest first from `historyStart`.
        var history: [Entry] = []
        var historyStart = 0
        /// The newest id replay can no longer reach: pruned from the log, or past `historyAge`
        /// (0: nothing was dropped).
        var droppedThrough: UInt64 = 0
    }

    public let limits: Limits
    private let state = Mutex(State())
    private let changeObservers = Mutex<[@Sendable ([Entry]) -> Void]>([])
    private let publishObservers = Mutex<[@Sendable ([Entry]) -> Void]>([])
    let metrics: HubMetrics

    /// - Parameter metrics: where the hub's counters go (Prometheus in the server).
    public init(limits: Limits = Limits(), metrics: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.limits = limits
        self.metrics = HubMetrics(factory: metrics)
    }

    /// Takes the log's newest entries (oldest first) as the window at start-up, with the log's
    /// pruned mark and newest id.
    public func restore(_ entries: [Entry], droppedThrough: UInt64, lastID: UInt64) {
        state.withLock { state in
            state.history = entries
            state.historyStart = 0
            state.lastID = max(state.lastID, lastID, entries.last?.event.id ?? 0)
            state.droppedThrough = max(state.droppedThrough, droppedThrough)
        }
    }

    /// The newest id delivered (or restored at start-up).
    public var newestID: UInt64 { state.withLock { $0.lastID } }

    /// The newest id replay can no longer reach (0: nothing was dropped).
    public var droppedThrough: UInt64 { state.withLock { $0.droppedThrough } }

    /// The log pruned everything up to `id`.
    public func markDropped(through id: UInt64) {
        state.withLock { $0.droppedThrough = max($0.droppedThrough, id) }
    }

    /// When replay after `lastEventID` needs entries older than the window: the newest id to
    /// read from the log (the one before the window's first), else nil.
    public func logReplayEnd(after lastEventID: UInt64?) -> UInt64? {
        guard let lastEventID else { return nil }
        return state.withLock { state in
            let first =
                state.historyStart < state.history.count
                ? state.history[state.historyStart].event.id : state.lastID + 1
            // Something the log keeps lies between the client's id and the window.
            guard first > 0, first - 1 > max(lastEventID, state.droppedThrough) else { return nil }
            return first - 1
        }
    }

    /// A stream that joined the hub.
    public struct Joined: Sendable {
        /// Identifies the stream to ``EventHub/unsubscribe(_:)``.
        public let id: Int
        /// The client's `Last-Event-ID` is older than the history: it must resynchronise.
        public let needsResync: Bool
        /// Events replayed from the history, written first.
        public let replayed: Int
    }

    /// Adds a stream for `caller` whose events go to `sink`. With `lastEventID`, the events after
    /// it that `caller` would have received are written first, exactly once and in order: the
    /// replay and the joining happen atomically with respect to delivery. `older` are entries
    /// read from the log for the part of the replay older than the window
    /// (see ``logReplayEnd(after:)``).
    /// When `older` was read up to `olderThrough` and the window has meanwhile moved past it,
    /// nothing joins and the answer is nil: read the log again (see ``logReplayEnd(after:)``).
    /// `forceResync` joins with `resync` and no replay. `channels` are the channels the stream
    /// subscribes to, already allowed for the caller.
    @discardableResult
    public func subscribe(
        _ caller: Caller,
        channels: Set<String> = [],
        origin: String? = nil,
        lastEventID: UInt64? = nil,
        older: [Entry] = [],
        olderThrough: UInt64? = nil,
        forceResync: Bool = false,
        sink: any StreamSink
    ) -> Joined? {
        let joined = state.withLock { state -> Joined? in
            prune(&state, now: .now)
            if let olderThrough, let first = state.history[state.historyStart...].first?.event.id,
                first > olderThrough + 1
            {
                return nil
            }
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            var resync = forceResync
            var replay: [ServerEvent] = []
            if let lastEventID, !forceResync {
                resync = lastEventID < state.droppedThrough
                var after = lastEventID
                for entry in older where entry.event.id > max(after, state.droppedThrough) {
                    if Self.reaches(entry.audience, caller, channels) { replay.append(entry.event) }
                    after = entry.event.id
                }
                for entry in state.history[state.historyStart...]
                where entry.event.id > after && Self.reaches(entry.audience, caller, channels) {
                    replay.append(entry.event)
                }
            }
            let key = ObjectIdentifier(sink.eventLoop)
            let shard =
                state.shards[key]?.shard
                ?? LoopShard(
                    eventLoop: sink.eventLoop,
                    batchInterval: TimeAmount(limits.batchInterval),
                    metrics: metrics
                ) { [weak self] ids in self?.forget(ids) }
            state.shards[key] = (shard, (state.shards[key]?.streams ?? 0) + 1)
            state.members[id] = Member(shard: shard, userID: caller.userID, origin: origin, channels: channels)
            if let user = caller.userID { state.userStreams[user, default: 0] += 1 }
            for channel in channels { state.channelStreams[channel, default: 0] += 1 }
            var encoded = ByteBuffer()
            for event in replay { encoded.writeString(event.wireFormat) }
            shard.add(
                id: id,
                sink: sink,
                userID: caller.userID,
                authenticated: caller.isAuthenticated,
                channels: channels,
                resync: resync,
                replay: replay,
                encoded: encoded
            )
            metrics.openStreams.record(state.members.count)
            return Joined(id: id, needsResync: resync, replayed: replay.count)
        }
        if let joined, joined.replayed > 0 { metrics.replays.increment() }
        return joined
    }

    /// A subscription read in-process: a queue of events, until it is cancelled, overflows or
    /// the hub ends it.
    public struct Subscription: Sendable {
        public let queue: StreamQueue
        let id: Int
        let hub: EventHub
        /// The client's `Last-Event-ID` is older than the history: it must resynchronise.
        public let needsResync: Bool
        /// Events replayed from the history, already queued.
        public let replayed: Int

        /// The next batch of events; nil when the stream ends.
        public func next() async -> [ServerEvent]? { await queue.next() }

        /// Ends the subscription.
        public func cancel() {
            hub.unsubscribe(id)
            queue.close()
        }
    }

    /// Opens a stream for `caller` read in-process through a queue bounded by ``limits``.
    public func subscribe(
        _ caller: Caller,
        channels: Set<String> = [],
        origin: String? = nil,
        lastEventID: UInt64? = nil
    ) -> Subscription {
        let queue = StreamQueue(maxEvents: limits.queueEvents, maxBytes: limits.queueBytes)
        let sink = QueueSink(eventLoop: MultiThreadedEventLoopGroup.singleton.any(), queue: queue)
        // Without a log read the hub always takes the stream.
        let joined = subscribe(caller, channels: channels, origin: origin, lastEventID: lastEventID, sink: sink)!
        return Subscription(
            queue: queue,
            id: joined.id,
            hub: self,
            needsResync: joined.needsResync,
            replayed: joined.replayed
        )
    }

    static func reaches(_ audience: Audience, _ caller: Caller, _ channels: Set<String>) -> Bool {
        switch audience {
        case .channel(let channel): channels.contains(channel)
        case .users(let users): caller.userID.map { users.contains($0) } ?? false
        case .broadcast(let authenticated, let anonymous): caller.isAuthenticated ? authenticated : anonymous
        case .changes: false
        }
    }

    /// Removes the stream `id`, whose sink ended on its own: its client went away, or, with
    /// `fellBehind`, the sink dropped a reader that stopped taking events. A drop is counted once,
    /// by whichever of this and the shard's report removes the stream.
    public func unsubscribe(_ id: Int, fellBehind: Bool = false) {
        let removed = state.withLock { state in
            guard let member = Self.removeMember(id, &state, metrics: metrics) else { return false }
            member.shard.remove(id: id, end: false)
            return true
        }
        if removed, fellBehind { metrics.droppedSlow.increment() }
    }

    /// Ends the streams `ids` from the hub's side.
    private func end(_ ids: [Int]) {
        state.withLock { state in
            for id in ids {
                guard let member = Self.removeMember(id, &state, metrics: metrics) else { continue }
                member.shard.remove(id: id, end: true)
            }
        }
    }

    /// Forgets streams a shard already dropped (their readers fell behind).
    func forget(_ ids: [Int]) {
        let removed = state.withLock { state in
            ids.count { Self.removeMember($0, &state, metrics: metrics) != nil }
        }
        metrics.droppedSlow.increment(by: removed)
    }

    private static func removeMember(_ id: Int, _ state: inout State, metrics: HubMetrics) -> Member? {
        guard let member = state.members.removeValue(forKey: id) else { return nil }
        if let user = member.userID {
            let left = (state.userStreams[user] ?? 1) - 1
            state.userStreams[user] = left > 0 ? left : nil
        }
        for channel in member.channels {
            let left = (state.channelStreams[channel] ?? 1) - 1
            state.channelStreams[channel] = left > 0 ? left : nil
        }
        let key = ObjectIdentifier(member.shard.eventLoop)
        if let entry = state.shards[key] { state.shards[key] = (entry.shard, entry.streams - 1) }
        metrics.openStreams.record(state.members.count)
        return member
    }

    /// Closes every stream opened from `origin` (a login session that ended).
    public func close(origin: String) {
        end(state.withLock { state in state.members.filter { $0.value.origin == origin }.map(\.key) })
    }

    /// The users with at least one open stream here.
    public var usersWithStreams: Set<String> {
        state.withLock { Set($0.userStreams.keys) }
    }

    /// Whether a stream is open for any of `users`.
    public func hasStreams(forAnyOf users: Set<String>) -> Bool {
        state.withLock { state in users.contains { state.userStreams[$0] != nil } }
    }

    /// Hands committed log entries (in commit order) to every event loop holding streams; each
    /// loop writes them to the streams of their audience. Entries at or below the newest id
    /// already delivered are ignored.
    public func deliver(_ entries: [Entry]) {
        let now = Timestamp.now
        let (published, changes) = state.withLock { state in
            var published: [Entry] = []
            var changes: [Entry] = []
            for entry in entries where add(entry, &state) {
                if entry.audience == .changes { changes.append(entry) } else { published.append(entry) }
            }
            prune(&state, now: now)
            return (published, changes)
        }
        metrics.published.increment(by: published.count)
        if !changes.isEmpty {
            for observer in changeObservers.withLock({ $0 }) { observer(changes) }
        }
        if !published.isEmpty {
            for observer in publishObservers.withLock({ $0 }) { observer(published) }
        }
    }

    /// Calls `observer` with every batch of delivered events (all audiences but
    /// ``Audience/changes``), in log order, right after their commit; it must return quickly.
    public func onPublished(_ observer: @escaping @Sendable ([Entry]) -> Void) {
        publishObservers.withLock { $0.append(observer) }
    }

    /// Calls `observer` with every batch of committed change records (audience
    /// ``Audience/changes``), in log order, right after the commit that wrote them; it must
    /// return quickly (it runs on the committing thread).
    public func onChanges(_ observer: @escaping @Sendable ([Entry]) -> Void) {
        changeObservers.withLock { $0.append(observer) }
    }

    /// Delivers an event that no log numbered (the fan-out on its own, in tests and
    /// benchmarks): its id is the next after the newest delivered.
    @discardableResult
    public func publish(type: String, data: String, to audience: Audience) -> ServerEvent {
        let now = Timestamp.now
        let entry = state.withLock { state in
            let entry = Entry(
                event: ServerEvent(id: state.lastID + 1, type: type, data: data),
                audience: audience,
                created: now
            )
            _ = add(entry, &state)
            prune(&state, now: now)
            return entry
        }
        metrics.published.increment()
        for observer in publishObservers.withLock({ $0 }) { observer([entry]) }
        return entry.event
    }

    /// Records `entry` in the window and hands it to the shards, unless it is not newer than the
    /// newest delivered; returns whether it was taken.
    private func add(_ entry: Entry, _ state: inout State) -> Bool {
        guard entry.event.id > state.lastID else { return false }
        state.lastID = entry.event.id
        state.history.append(entry)
        if case .users(let users) = entry.audience, !users.contains(where: { state.userStreams[$0] != nil }) {
            return true
        }
        if case .channel(let channel) = entry.audience, state.channelStreams[channel] == nil { return true }
        if entry.audience == .changes { return true }
        let encoded = ByteBuffer(string: entry.event.wireFormat)
        // Handed over inside the lock, so every loop sees the events in log order.
        for (shard, streams) in state.shards.values where streams > 0 {
            shard.publish(entry.event, encoded: encoded, to: entry.audience)
        }
        return true
    }

    /// Keeps the window within `windowCount`; entries past `historyAge` or `historyCount` leave
    /// it and can no longer be replayed from anywhere.
    private func prune(_ state: inout State, now: Timestamp) {
        let oldest = now.millisecondsSince1970 - limits.historyAge.components.seconds * 1000
        let keep = min(limits.windowCount, limits.historyCount)
        while state.historyStart < state.history.count {
            let entry = state.history[state.historyStart]
            let held = state.history.count - state.historyStart
            // Past the age or the count the log keeps, an entry is gone for replay everywhere;
            // past the window alone it is still in the log.
            if entry.created.millisecondsSince1970 < oldest || held > limits.historyCount {
                state.droppedThrough = max(state.droppedThrough, entry.event.id)
            } else if held <= keep {
                break
            }
            state.historyStart += 1
        }
        if state.historyStart > 4096, state.historyStart * 2 > state.history.count {
            state.history.removeFirst(state.historyStart)
            state.historyStart = 0
        }
    }

    /// Ends every stream (shutdown).
    public func closeAll() {
        end(state.withLock { Array($0.members.keys) })
    }
}

/// The hub's metrics, named for Prometheus.
struct HubMetrics: Sendable {
    let openStreams: Gauge
    let published: Counter
    let deliveries: Counter
    let replays: Counter
    let droppedSlow: Counter

    init(factory: any MetricsFactory) {
        openStreams = Gauge(label: "herald_open_streams", factory: factory)
        published = Counter(label: "herald_events_published_total", factory: factory)
        deliveries = Counter(label: "herald_event_deliveries_total", factory: factory)
        replays = Counter(label: "herald_replays_total", factory: factory)
        droppedSlow = Counter(label: "herald_streams_dropped_slow_total", factory: factory)
    }
}
