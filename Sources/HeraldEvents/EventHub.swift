import HeraldSchema
import HeraldStorage
import Metrics
import Synchronization

/// Fans events out to the open streams that may receive them, and keeps a bounded history for
/// clients that reconnect with `Last-Event-ID`.
///
/// Streams are indexed by user, so a targeted send touches only that user's streams; broadcast
/// sets are kept apart for authenticated and anonymous clients. Ids increase across everything
/// published and across restarts: an id is at least the wall-clock milliseconds times 1000, and
/// always above the last one.
public final class EventHub: Sendable {
    /// How much history to keep, and how large a stream's queue may grow.
    public struct Limits: Sendable {
        public var historyCount = 10_000
        public var historyAge: Duration = .seconds(3600)
        public var queueEvents = 1000
        public var queueBytes = 1 << 20

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

    struct Subscriber {
        var caller: Caller
        /// What opened the stream (a login session's key), so ending that closes the stream.
        var origin: String?
        var queue: StreamQueue
    }

    struct State {
        var lastID: UInt64 = 0
        var nextSubscriber = 0
        var subscribers: [Int: Subscriber] = [:]
        var byUser: [String: Set<Int>] = [:]
        var authenticated: Set<Int> = []
        var anonymous: Set<Int> = []
        var history: [Entry] = []
        var historyStart = 0
        /// Published but not yet handed to the persistence service.
        var unsaved: [Entry] = []
        /// The newest id no longer in the history (0: nothing was dropped).
        var droppedThrough: UInt64 = 0
    }

    public let limits: Limits
    private let state = Mutex(State())
    let metrics: HubMetrics

    /// - Parameter metrics: where the hub's counters go (Prometheus in the server).
    public init(limits: Limits = Limits(), metrics: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.limits = limits
        self.metrics = HubMetrics(factory: metrics)
    }

    /// Restores history read back from storage at start-up (oldest first).
    public func restore(_ entries: [Entry]) {
        state.withLock { state in
            state.history = entries
            state.historyStart = 0
            state.lastID = max(state.lastID, entries.last?.event.id ?? 0)
            if let first = entries.first { state.droppedThrough = first.event.id - 1 }
        }
    }

    /// A subscription: a stream's queue, until it is cancelled, overflows or the hub closes it.
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
        public func cancel() { hub.remove(id) }
    }

    /// Opens a stream for `caller`. With `lastEventID`, the events after it that `caller` would
    /// have received are queued first, exactly once and in order, atomically with joining.
    public func subscribe(_ caller: Caller, origin: String? = nil, lastEventID: UInt64? = nil) -> Subscription {
        let queue = StreamQueue(maxEvents: limits.queueEvents, maxBytes: limits.queueBytes)
        let (id, resync, replayed) = state.withLock { state -> (Int, Bool, Int) in
            prune(&state, now: .now)
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            var resync = false
            var replayed = 0
            if let lastEventID {
                resync = lastEventID < state.droppedThrough
                for entry in state.history[state.historyStart...]
                where entry.event.id > lastEventID && Self.reaches(entry.audience, caller) {
                    queue.push(entry.event)
                    replayed += 1
                }
            }
            state.subscribers[id] = Subscriber(caller: caller, origin: origin, queue: queue)
            if let user = caller.userID { state.byUser[user, default: []].insert(id) }
            if caller.isAuthenticated { state.authenticated.insert(id) } else { state.anonymous.insert(id) }
            metrics.openStreams.record(state.subscribers.count)
            return (id, resync, replayed)
        }
        if replayed > 0 { metrics.replays.increment() }
        return Subscription(queue: queue, id: id, hub: self, needsResync: resync, replayed: replayed)
    }

    static func reaches(_ audience: Audience, _ caller: Caller) -> Bool {
        switch audience {
        case .users(let users): caller.userID.map { users.contains($0) } ?? false
        case .broadcast(let authenticated, let anonymous): caller.isAuthenticated ? authenticated : anonymous
        }
    }

    func remove(_ id: Int) {
        let removed = state.withLock { state -> Subscriber? in
            guard let subscriber = state.subscribers.removeValue(forKey: id) else { return nil }
            if let user = subscriber.caller.userID {
                state.byUser[user]?.remove(id)
                if state.byUser[user]?.isEmpty == true { state.byUser[user] = nil }
            }
            state.authenticated.remove(id)
            state.anonymous.remove(id)
            metrics.openStreams.record(state.subscribers.count)
            return subscriber
        }
        removed?.queue.close()
    }

    /// Closes every stream opened from `origin` (a login session that ended).
    public func close(origin: String) {
        let ids = state.withLock { state in state.subscribers.filter { $0.value.origin == origin }.map(\.key) }
        for id in ids { remove(id) }
    }

    /// Whether a stream is open for any of `users`.
    public func hasStreams(forAnyOf users: Set<String>) -> Bool {
        state.withLock { state in users.contains { state.byUser[$0] != nil } }
    }

    /// Assigns the next id, records the event in the history and queues it on every stream of
    /// the audience; a stream whose queue overflows is closed.
    @discardableResult
    public func publish(type: String, data: String, to audience: Audience) -> ServerEvent {
        let now = Timestamp.now
        let (event, slow) = state.withLock { state -> (ServerEvent, [Int]) in
            let id = max(state.lastID + 1, UInt64(max(0, now.millisecondsSince1970)) * 1000)
            state.lastID = id
            let event = ServerEvent(id: id, type: type, data: data)
            let entry = Entry(event: event, audience: audience, created: now)
            state.history.append(entry)
            state.unsaved.append(entry)
            prune(&state, now: now)
            var delivered = 0
            var slow: [Int] = []
            func deliver(_ id: Int) {
                guard let subscriber = state.subscribers[id] else { return }
                if subscriber.queue.push(event) { delivered += 1 } else { slow.append(id) }
            }
            switch audience {
            case .users(let users):
                for user in users { state.byUser[user]?.forEach(deliver) }
            case .broadcast(let authenticated, let anonymous):
                // A stream is in one of the two sets, so nothing is delivered twice.
                if authenticated { state.authenticated.forEach(deliver) }
                if anonymous { state.anonymous.forEach(deliver) }
            }
            metrics.deliveries.increment(by: delivered)
            return (event, slow)
        }
        metrics.published.increment()
        if !slow.isEmpty { metrics.droppedSlow.increment(by: slow.count) }
        for id in slow { remove(id) }
        return event
    }

    /// Drops history past the count and age limits.
    private func prune(_ state: inout State, now: Timestamp) {
        let oldest = now.millisecondsSince1970 - limits.historyAge.components.seconds * 1000
        while state.historyStart < state.history.count,
            state.history.count - state.historyStart > limits.historyCount
                || state.history[state.historyStart].created.millisecondsSince1970 < oldest
        {
            state.droppedThrough = state.history[state.historyStart].event.id
            state.historyStart += 1
        }
        if state.historyStart > 4096, state.historyStart * 2 > state.history.count {
            state.history.removeFirst(state.historyStart)
            state.historyStart = 0
        }
    }

    /// Hands over the events published since the last call, for storage.
    public func takeUnsaved() -> [Entry] {
        state.withLock { state in
            let unsaved = state.unsaved
            state.unsaved = []
            return unsaved
        }
    }

    /// Puts back events whose saving failed, ahead of newer ones, for the next attempt.
    public func returnUnsaved(_ entries: [Entry]) {
        state.withLock { $0.unsaved = entries + $0.unsaved }
    }

    /// Ends every stream (shutdown).
    public func closeAll() {
        let ids = state.withLock { Array($0.subscribers.keys) }
        for id in ids { remove(id) }
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
