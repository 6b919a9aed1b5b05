import HeraldStorage
import Synchronization

/// Fans events out to the open streams that may receive them.
///
/// Streams are indexed by user, so a targeted send touches only that user's streams, and the
/// broadcast sets are kept apart for authenticated and anonymous clients. Ids increase across
/// everything published, in publish order.
public final class EventHub: Sendable {
    struct Subscriber {
        var caller: Caller
        /// What opened the stream (a login session's key), so ending that closes the stream.
        var origin: String?
        var continuation: AsyncStream<ServerEvent>.Continuation
    }

    struct State {
        var nextID: UInt64 = 1
        var nextSubscriber = 0
        var subscribers: [Int: Subscriber] = [:]
        var byUser: [String: Set<Int>] = [:]
        var authenticated: Set<Int> = []
        var anonymous: Set<Int> = []
    }

    private let state = Mutex(State())

    public init() {}

    /// A subscription: the events for `caller`, until it is cancelled or the hub drops it.
    public struct Subscription: Sendable {
        public let events: AsyncStream<ServerEvent>
        let id: Int
        let hub: EventHub

        /// Ends the subscription.
        public func cancel() { hub.remove(id) }
    }

    /// Opens a stream for `caller`.
    public func subscribe(_ caller: Caller, origin: String? = nil) -> Subscription {
        let (events, continuation) = AsyncStream.makeStream(of: ServerEvent.self)
        let id = state.withLock { state in
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[id] = Subscriber(caller: caller, origin: origin, continuation: continuation)
            if let user = caller.userID { state.byUser[user, default: []].insert(id) }
            if caller.isAuthenticated { state.authenticated.insert(id) } else { state.anonymous.insert(id) }
            return id
        }
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        return Subscription(events: events, id: id, hub: self)
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
            return subscriber
        }
        removed?.continuation.finish()
    }

    /// Closes every stream opened from `origin` (a login session that ended).
    public func close(origin: String) {
        let ids = state.withLock { state in state.subscribers.filter { $0.value.origin == origin }.map(\.key) }
        for id in ids { remove(id) }
    }

    /// How many streams are open.
    public var streamCount: Int { state.withLock { $0.subscribers.count } }

    /// Whether a stream is open for any of `users`.
    public func hasStreams(forAnyOf users: Set<String>) -> Bool {
        state.withLock { state in users.contains { state.byUser[$0] != nil } }
    }

    /// Whether any stream would receive an event for `audience` now.
    public func reaches(_ audience: Audience) -> Bool {
        switch audience {
        case .users(let users): return hasStreams(forAnyOf: users)
        case .broadcast(let authenticated, let anonymous):
            return state.withLock {
                (authenticated && !$0.authenticated.isEmpty) || (anonymous && !$0.anonymous.isEmpty)
            }
        }
    }

    /// Assigns the next id and hands the event to every stream of the audience; returns it.
    @discardableResult
    public func publish(type: String, data: String, to audience: Audience) -> ServerEvent {
        let (event, targets) = state.withLock { state -> (ServerEvent, [AsyncStream<ServerEvent>.Continuation]) in
            let event = ServerEvent(id: state.nextID, type: type, data: data)
            state.nextID += 1
            var ids = Set<Int>()
            switch audience {
            case .users(let users):
                for user in users { ids.formUnion(state.byUser[user] ?? []) }
            case .broadcast(let authenticated, let anonymous):
                if authenticated { ids.formUnion(state.authenticated) }
                if anonymous { ids.formUnion(state.anonymous) }
            }
            return (event, ids.sorted().compactMap { state.subscribers[$0]?.continuation })
        }
        for continuation in targets { continuation.yield(event) }
        return event
    }

    /// Ends every stream (shutdown).
    public func closeAll() {
        let all = state.withLock { state -> [Subscriber] in
            let all = Array(state.subscribers.values)
            state = State(nextID: state.nextID)
            return all
        }
        for subscriber in all { subscriber.continuation.finish() }
    }
}

extension EventHub.State {
    init(nextID: UInt64) {
        self.init()
        self.nextID = nextID
    }
}
