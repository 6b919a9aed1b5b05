import HeraldEvents
import HeraldSchema
import HeraldStorage
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Live queries: a REST list's result, then every committed change to it, as one stream.
///
/// A stream starts with `snapshot` (the list as the same GET answers it, read in one
/// transaction at a known log position) and goes on with `enter`, `update` and `leave` for each
/// object that starts matching, changes while it matches, or stops matching, for its caller's
/// rights. Each event's `id:` is the id of the change record in the event log that caused it.
///
/// The writes record which objects they changed in the log (``ObjectChange``); after each commit
/// the hub hands those records here. One task works through them in log order: for every
/// distinct query and caller it reads, in one transaction for all of them, which of the changed
/// objects match now, renders them once, and compares with what each stream already has. A
/// change that can move many objects in or out of sight (group membership, a user's admin flag,
/// a deleted user) re-reads each query whole.
public final class LiveQueries: Service, Sendable {
    /// What a live query asks for: the list's filter and sort (no paging) and its rendering.
    public struct Query: Sendable, Hashable {
        public var query: EntityQuery
        public var nesting: Nesting
        /// A custom view's properties, or nil for every readable one.
        public var view: [String]?

        public init(query: EntityQuery, nesting: Nesting, view: [String]?) {
            self.query = query
            self.nesting = nesting
            self.view = view
        }
    }

    enum Message: Sendable {
        case subscribe(Subscriber, CheckedContinuation<Void, any Error>)
        case unsubscribe(Int)
        case changes([EventHub.Entry])
        case close(origin: String)
    }

    let workRunner: WorkRunner
    let logger: Logger
    private let inbox: AsyncStream<Message>
    private let send: AsyncStream<Message>.Continuation
    private let nextID = Atomic<Int>(0)
    /// Streams open, so commits with none skip the queue.
    private let open = Atomic<Int>(0)

    public init(workRunner: WorkRunner, logger: Logger) {
        self.workRunner = workRunner
        self.logger = logger
        (inbox, send) = AsyncStream.makeStream(of: Message.self)
        workRunner.events.onChanges { [weak self] entries in
            guard let self, self.open.load(ordering: .relaxed) > 0 else { return }
            self.send.yield(.changes(entries))
        }
    }

    /// Starts a stream of `query` for `caller` on `sink`: writes its snapshot, then its changes,
    /// until ``unsubscribe(_:)``. Returns the stream's id once the snapshot is on its way.
    public func subscribe(
        _ query: Query,
        caller: Caller,
        origin: String?,
        sink: any StreamSink
    ) async throws -> Int {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let subscriber = Subscriber(id: id, query: query, caller: caller, origin: origin, sink: sink)
        open.add(1, ordering: .relaxed)
        do {
            try await withCheckedThrowingContinuation { continuation in
                send.yield(.subscribe(subscriber, continuation))
            }
        } catch {
            open.subtract(1, ordering: .relaxed)
            throw error
        }
        return id
    }

    /// Ends the stream `id` (its client went away).
    public func unsubscribe(_ id: Int) {
        send.yield(.unsubscribe(id))
    }

    /// Ends every stream opened from `origin` (a login session that ended).
    public func close(origin: String) {
        send.yield(.close(origin: origin))
    }

    /// Works through subscriptions and changes in order until shutdown, then ends every stream.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var state = State()
            for await message in self.inbox {
                await self.handle(message, &state)
            }
            for subscriber in state.subscribers.values { subscriber.end() }
        }
    }

    // MARK: Processing

    struct State {
        var subscribers: [Int: Subscriber] = [:]
        /// Streams by query and visibility class: one evaluation serves them all.
        var groups: [GroupKey: Set<Int>] = [:]
    }

    /// A query as seen by one visibility class: admins all see the same.
    struct GroupKey: Hashable {
        var query: Query
        var viewer: Caller

        init(_ query: Query, _ caller: Caller) {
            self.query = query
            switch caller {
            case .anonymous: viewer = .anonymous
            case .superuser: viewer = .superuser
            case .user(let id, _, let isAdmin): viewer = isAdmin ? .superuser : .user(id: id, name: nil, isAdmin: false)
            }
        }
    }

    private func handle(_ message: Message, _ state: inout State) async {
        switch message {
        case .subscribe(let subscriber, let continuation):
            do {
                try await start(subscriber)
                state.subscribers[subscriber.id] = subscriber
                state.groups[GroupKey(subscriber.query, subscriber.caller), default: []].insert(subscriber.id)
                continuation.resume()
            } catch {
                continuation.resume(throwing: error)
            }
        case .unsubscribe(let id):
            remove(id, &state)
        case .close(let origin):
            for subscriber in state.subscribers.values where subscriber.origin == origin {
                subscriber.end()
                remove(subscriber.id, &state)
            }
        case .changes(let entries):
            guard !state.groups.isEmpty else { return }
            do {
                try await apply(entries, &state)
            } catch {
                // The streams can no longer be kept exact: end them, their clients reconnect
                // and start from a new snapshot.
                logger.error("live queries could not follow a change; their streams end: \(error)")
                for subscriber in state.subscribers.values { subscriber.end() }
                for id in Array(state.subscribers.keys) { remove(id, &state) }
            }
        }
    }

    private func remove(_ id: Int, _ state: inout State) {
        guard let subscriber = state.subscribers.removeValue(forKey: id) else { return }
        open.subtract(1, ordering: .relaxed)
        let key = GroupKey(subscriber.query, subscriber.caller)
        state.groups[key]?.remove(id)
        if state.groups[key]?.isEmpty == true { state.groups[key] = nil }
    }

    /// Reads the snapshot and the log position it was read at, and writes it.
    private func start(_ subscriber: Subscriber) async throws {
        let query = subscriber.query
        let (rendered, ids, position) = try await workRunner.read(subscriber.caller) { work in
            let scope = try work.scope
            let entities = try work.list(query.query, as: scope)
            let rendered = try entities.map {
                try work.model.render($0, nesting: query.nesting, view: query.view, as: scope, in: work.tx)
            }
            return (rendered, entities.map(\.id), UInt64(max(0, try work.tx.newestEventID())))
        }
        subscriber.position = position
        subscriber.known = Set(ids)
        let snapshot: JSONValue = [
            "result": .array(rendered), "result_count": .int(Int64(rendered.count)),
            "page_count": .int(rendered.isEmpty ? 0 : 1),
        ]
        subscriber.open(with: ServerEvent(id: position, type: "snapshot", data: snapshot.jsonString))
    }

    /// One object's change as a stream sees it.
    struct Touched {
        var logID: UInt64 = 0
        var keys: Set<String> = []
        var types: Set<String> = []
    }

    /// Follows a batch of change records for every group with streams.
    private func apply(_ entries: [EventHub.Entry], _ state: inout State) async throws {
        var touched: [String: Touched] = [:]
        var order: [String] = []
        var rightsChanged: UInt64?
        for entry in entries {
            guard let change = ObjectChange(logData: entry.event.data) else { continue }
            if Self.movesRights(change) { rightsChanged = entry.event.id }
            if touched[change.id] == nil { order.append(change.id) }
            touched[change.id, default: Touched()].logID = entry.event.id
            touched[change.id]?.keys.formUnion(change.keys)
            touched[change.id]?.types.formUnion([change.type])
        }
        let groups = state.groups.keys.filter { key in
            rightsChanged != nil
                || order.contains {
                    touched[$0]!.types.contains(key.query.query.type) || touched[$0]!.types.contains("")
                }
        }
        guard !groups.isEmpty else { return }
        let wholly = rightsChanged != nil
        let changedIDs = order
        // One read for every group: which changed objects match now, rendered once per group.
        let results = try await workRunner.read(.superuser) { work in
            var results: [GroupKey: Evaluation] = [:]
            var scopes: [Caller: AccessScope] = [:]
            for key in groups {
                let scope: AccessScope
                if let known = scopes[key.viewer] {
                    scope = known
                } else {
                    scope = try AccessScope.of(key.viewer, schema: work.model.schema, in: work.tx)
                    scopes[key.viewer] = scope
                }
                guard work.model.schema.types[key.query.query.type] != nil else {
                    results[key] = Evaluation(rendered: [:], all: wholly ? [] : nil)
                    continue
                }
                let matching = try work.list(key.query.query, within: wholly ? nil : changedIDs, as: scope)
                var rendered: [String: JSONValue] = [:]
                for entity in matching {
                    rendered[entity.id] = try work.model.render(
                        entity,
                        nesting: key.query.nesting,
                        view: key.query.view,
                        as: scope,
                        in: work.tx
                    )
                }
                results[key] = Evaluation(rendered: rendered, all: wholly ? matching.map(\.id) : nil)
            }
            return results
        }
        for key in groups {
            guard let evaluation = results[key] else { continue }
            for id in state.groups[key] ?? [] {
                guard let subscriber = state.subscribers[id] else { continue }
                let events = subscriber.follow(
                    evaluation,
                    order: order,
                    touched: touched,
                    rightsChanged: rightsChanged
                )
                if !events.isEmpty, !subscriber.write(events) { remove(id, &state) }
            }
        }
    }

    /// Whether a change can move objects in or out of sight without changing them: group
    /// membership, a user's admin flag or groups, a user deleted (their objects lose their owner).
    static func movesRights(_ change: ObjectChange) -> Bool {
        switch change.type {
        case BuiltInType.group: change.keys.contains("members") || change.kind == .deleted
        case BuiltInType.user:
            change.kind == .deleted || change.keys.contains("groups") || change.keys.contains("isAdmin")
        default: false
        }
    }

    /// What one group's query matches after a batch: the changed objects that match, rendered,
    /// and, when rights moved, the ids of everything that matches.
    struct Evaluation: Sendable {
        var rendered: [String: JSONValue]
        var all: [String]?
    }
}
