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
        /// Names the query as its request did (type, view, parameters): how a reconnect after a
        /// restart finds the stream it continues.
        public var signature: String

        public init(query: EntityQuery, nesting: Nesting, view: [String]?, signature: String = "") {
            self.query = query
            self.nesting = nesting
            self.view = view
            self.signature = signature
        }
    }

    enum Message: Sendable {
        case subscribe(Subscriber, lastEventID: UInt64?, CheckedContinuation<Void, any Error>)
        case unsubscribe(Int)
        case changes([EventHub.Entry])
        case close(origin: String)
    }

    /// How long an ended stream's state is kept so a reconnect can resume it, and for how
    /// many streams. While any is kept, writes record their changes.
    public struct Limits: Sendable {
        /// The server sets it to the event log's `historyAge`.
        public var retention: Duration = .seconds(3600)
        public var retainedStreams = 10_000
        /// Transitions (enters and leaves) a stream remembers for resuming.
        public var journalLength = 10_000

        public init() {}
    }

    let workRunner: WorkRunner
    let logger: Logger
    let limits: Limits
    /// How a stream's grant is checked again when grants change; nil: never.
    let grants: GrantCheck?

    /// Whether a caller may still list a type, asked again whenever grants change.
    public struct GrantCheck: Sendable {
        /// Forgets cached grants: called once before the streams are checked.
        public var refresh: @Sendable () -> Void
        /// Whether `caller` may list objects of the type.
        public var allows: @Sendable (_ caller: Caller, _ type: String) async -> Bool

        public init(refresh: @escaping @Sendable () -> Void, allows: @escaping @Sendable (Caller, String) async -> Bool)
        {
            self.refresh = refresh
            self.allows = allows
        }
    }
    /// Messages in arrival order; the task takes all that wait at once, so under load the
    /// change records of many commits are followed in one batch (one read, one write a stream).
    private let inbox = Mutex<[Message]>([])
    private let wakeUps: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    private let nextID = Atomic<Int>(0)
    /// Ended streams read back at start-up (see ``restore()``), taken by the task when it starts.
    private let restored = Mutex<[Subscriber]>([])
    /// The metadata key ended streams are kept under across a graceful restart.
    static let keptKey = "live.keptStreams"
    /// Streams open, so commits with none skip the queue.
    private let open = Atomic<Int>(0)
    /// Ended streams kept for a reconnect: their changes must still be recorded.
    private let retainedCount = Atomic<Int>(0)

    /// Whether writes must record their changes: a stream is open, or one that ended may still
    /// resume.
    var followsChanges: Bool {
        open.load(ordering: .sequentiallyConsistent) > 0 || retainedCount.load(ordering: .sequentiallyConsistent) > 0
    }

    public init(
        workRunner: WorkRunner,
        limits: Limits = Limits(),
        logger: Logger,
        grants: GrantCheck? = nil
    ) {
        self.grants = grants
        self.workRunner = workRunner
        self.limits = limits
        self.logger = logger
        (wakeUps, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        workRunner.recordChanges { [weak self] in self?.followsChanges ?? false }
        workRunner.events.onChanges { [weak self] entries in
            guard let self, self.open.load(ordering: .sequentiallyConsistent) > 0 else { return }
            self.send(.changes(entries))
        }
    }

    /// Starts a stream of `query` for `caller` on `sink`: writes its snapshot, then its changes,
    /// until ``unsubscribe(_:)``. With the `lastEventID` of a stream of the same query and
    /// caller that ended a short while ago (``Limits/retention``), it writes what that stream
    /// missed instead of a snapshot. Returns the stream's id once its first events are on
    /// their way.
    public func subscribe(
        _ query: Query,
        caller: Caller,
        origin: String?,
        lastEventID: UInt64? = nil,
        sink: any StreamSink
    ) async throws -> Int {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let subscriber = Subscriber(
            id: id,
            query: query,
            caller: caller,
            origin: origin,
            sink: sink,
            journalLength: limits.journalLength
        )
        open.add(1, ordering: .sequentiallyConsistent)
        do {
            try await withCheckedThrowingContinuation { continuation in
                send(.subscribe(subscriber, lastEventID: lastEventID, continuation))
            }
        } catch {
            open.subtract(1, ordering: .sequentiallyConsistent)
            throw error
        }
        return id
    }

    /// Ends the stream `id` (its client went away).
    public func unsubscribe(_ id: Int) {
        send(.unsubscribe(id))
    }

    /// Ends every stream opened from `origin` (a login session that ended).
    public func close(origin: String) {
        send(.close(origin: origin))
    }

    /// Works through subscriptions and changes in order until shutdown, then ends every stream.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var state = State()
            state.retained = self.restored.withLock { restored in
                defer { restored = [] }
                return restored
            }
            for await _ in self.wakeUps {
                for message in Self.merged(
                    self.inbox.withLock { inbox in
                        defer { inbox = [] }
                        return inbox
                    }
                ) {
                    await self.handle(message, &state)
                }
            }
            for subscriber in state.subscribers.values { subscriber.end() }
            self.keep(state)
        }
    }

    /// At start-up, before the server takes requests: reads the streams a graceful shutdown
    /// kept, so their clients' reconnects resume, and has writes record their changes for
    /// them. The kept state is taken out of storage at once: after a crash nothing stale is
    /// read back.
    public func restore() async throws {
        let key = Self.keptKey
        let stored = try await workRunner.storage.write { tx -> String? in
            let stored = try tx.metadata(key)
            if stored != nil { try tx.setMetadata(key, "[]") }
            return stored
        }
        guard let stored, case .array(let entries)? = try? JSONValue(parsing: stored) else { return }
        let kept = entries.compactMap { Subscriber(restoring: $0, journalLength: limits.journalLength) }
        retainedCount.add(kept.count, ordering: .sequentiallyConsistent)
        restored.withLock { $0 += kept }
    }

    /// At shutdown: keeps the open and lately ended streams' state for a reconnect after the
    /// restart.
    private func keep(_ state: State) {
        let now = ContinuousClock.now
        let oldest = now - limits.retention
        let kept = state.retained.filter { ($0.endedAt ?? now) >= oldest } + Array(state.subscribers.values)
        guard !kept.isEmpty else { return }
        let text = JSONValue.array(kept.suffix(limits.retainedStreams).map { $0.stored }).jsonString
        do {
            try workRunner.storage.writeBlocking { tx in try tx.setMetadata(Self.keptKey, text) }
        } catch {
            logger.warning("live streams could not be kept for the restart; their clients get snapshots: \(error)")
        }
    }

    private func send(_ message: Message) {
        inbox.withLock { $0.append(message) }
        wake.yield()
    }

    /// `messages` with each run of change records made one.
    static func merged(_ messages: [Message]) -> [Message] {
        var out: [Message] = []
        for message in messages {
            if case .changes(let more) = message, case .changes(let earlier)? = out.last {
                out[out.count - 1] = .changes(earlier + more)
            } else {
                out.append(message)
            }
        }
        return out
    }

    // MARK: Processing

    struct State {
        var subscribers: [Int: Subscriber] = [:]
        /// Streams by query and visibility class: one evaluation serves them all.
        var groups: [GroupKey: Set<Int>] = [:]
        /// Streams that ended lately, by query and caller, oldest first, for resuming.
        var retained: [Subscriber] = []
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
        case .subscribe(let subscriber, let lastEventID, let continuation):
            do {
                let resumed = lastEventID.flatMap { resumable(subscriber, after: $0, &state) }
                try await start(subscriber, resuming: resumed)
                state.subscribers[subscriber.id] = subscriber
                state.groups[subscriber.key, default: []].insert(subscriber.id)
                continuation.resume()
            } catch {
                continuation.resume(throwing: error)
            }
        case .unsubscribe(let id):
            // Counted as kept before it stops counting as open, so recording never pauses.
            guard let subscriber = state.subscribers[id] else { return }
            retain(subscriber, &state)
            remove(id, &state)
        case .close(let origin):
            for subscriber in state.subscribers.values where subscriber.origin == origin {
                subscriber.end()
                remove(subscriber.id, &state)
            }
            drop(where: { $0.origin == origin }, &state)
        case .changes(let entries):
            guard !state.groups.isEmpty else { return }
            do {
                try await apply(ChangeBatch(entries), &state)
            } catch {
                // The streams can no longer be kept exact: end them, their clients reconnect
                // and start from a new snapshot.
                logger.error("live queries could not follow a change; their streams end: \(error)")
                for subscriber in state.subscribers.values { subscriber.end() }
                for id in Array(state.subscribers.keys) { remove(id, &state) }
                drop(where: { _ in true }, &state)
            }
        }
    }

    @discardableResult
    private func remove(_ id: Int, _ state: inout State) -> Subscriber? {
        guard let subscriber = state.subscribers.removeValue(forKey: id) else { return nil }
        open.subtract(1, ordering: .sequentiallyConsistent)
        state.groups[subscriber.key]?.remove(id)
        if state.groups[subscriber.key]?.isEmpty == true { state.groups[subscriber.key] = nil }
        return subscriber
    }

    /// Keeps an ended stream's state for a reconnect, within the limits.
    private func retain(_ subscriber: Subscriber, _ state: inout State) {
        subscriber.endedAt = .now
        state.retained.append(subscriber)
        retainedCount.add(1, ordering: .sequentiallyConsistent)
        expire(&state)
    }

    private func expire(_ state: inout State) {
        let oldest = ContinuousClock.now - limits.retention
        drop(where: { ($0.endedAt ?? .now) < oldest }, &state)
        if state.retained.count > limits.retainedStreams {
            let extra = state.retained.count - limits.retainedStreams
            state.retained.removeFirst(extra)
            retainedCount.subtract(extra, ordering: .sequentiallyConsistent)
        }
    }

    /// Forgets the kept streams that match.
    private func drop(where matches: (Subscriber) -> Bool, _ state: inout State) {
        let before = state.retained.count
        state.retained.removeAll(where: matches)
        retainedCount.subtract(before - state.retained.count, ordering: .sequentiallyConsistent)
    }

    /// What a client held at `lastEventID`, from the streams of its query and caller that
    /// reached it: those that ended lately and those still open (the server may not have seen
    /// the old connection go yet). Used only when they all agree (one user's two tabs may
    /// not); the ended ones are taken.
    private func resumable(_ subscriber: Subscriber, after lastEventID: UInt64, _ state: inout State) -> Resume? {
        expire(&state)
        guard lastEventID >= workRunner.events.droppedThrough else { return nil }
        func same(_ other: Subscriber) -> Bool {
            other.query.signature == subscriber.query.signature && other.caller == subscriber.caller
        }
        let ended = state.retained.indices.filter { same(state.retained[$0]) }
        let open = (state.groups[subscriber.key] ?? []).compactMap { state.subscribers[$0] }.filter(same)
        // A stream that never sent that id cannot be the one the client had.
        let candidates = (ended.map { state.retained[$0] } + open).filter { $0.reached(lastEventID) }
        let held = candidates.compactMap { $0.held(at: lastEventID) }
        guard !held.isEmpty, held.count == candidates.count, Set(held).count == 1 else { return nil }
        let taken = Set(ended.map { ObjectIdentifier(state.retained[$0]) })
        drop(where: { taken.contains(ObjectIdentifier($0)) }, &state)
        return Resume(after: lastEventID, known: held[0])
    }

    /// A stream taken up again: the client's last id and what it held then.
    struct Resume: Sendable {
        var after: UInt64
        var known: Set<String>
    }

    /// Writes a new stream's first events: its snapshot, or, resuming, what it missed after the
    /// client's last id, read with the change records since then in one transaction.
    private func start(_ subscriber: Subscriber, resuming resume: Resume?) async throws {
        // Writes record their changes from the moment this stream counted as open; one that
        // looked before that may still be committing. Waiting for those to end puts their
        // changes in the snapshot below, and every later write is recorded.
        await workRunner.unrecordedWritesEnded()
        let (query, key) = (subscriber.query, subscriber.key)
        let first = try await workRunner.read(subscriber.caller) { work -> First in
            let scope = try work.scope
            let position = UInt64(max(0, try work.tx.newestEventID()))
            if let resume {
                let stored = try work.tx.events(
                    after: Int64(clamping: resume.after),
                    through: Int64(clamping: position),
                    limit: Int.max
                )
                let batch = ChangeBatch(stored)
                let evaluation = try Self.evaluate(key, batch, scope: scope, in: work)
                return .missed(position, batch, evaluation)
            }
            let entities = try work.list(query.query, as: scope)
            let rendered = try entities.map {
                try work.model.render($0, nesting: query.nesting, view: query.view, as: scope, in: work.tx)
            }
            return .snapshot(position, rendered, entities.map(\.id))
        }
        switch first {
        case .snapshot(let position, let rendered, let ids):
            subscriber.reset(known: Set(ids), position: position)
            let snapshot: JSONValue = [
                "result": .array(rendered), "result_count": .int(Int64(rendered.count)),
                "page_count": .int(rendered.isEmpty ? 0 : 1),
            ]
            subscriber.open(with: [ServerEvent(id: position, type: "snapshot", data: snapshot.jsonString)])
        case .missed(let position, let batch, let evaluation):
            subscriber.reset(known: resume?.known ?? [], position: resume?.after ?? position)
            let events = subscriber.follow(evaluation, batch)
            subscriber.position = position
            subscriber.open(with: events)
        }
    }

    /// A new stream's first events, as read.
    enum First: Sendable {
        case snapshot(UInt64, [JSONValue], [String])
        case missed(UInt64, ChangeBatch, Evaluation)
    }

    /// Follows a batch of change records for every group with streams.
    private func apply(_ batch: ChangeBatch, _ state: inout State) async throws {
        if let grants, batch.touched.values.contains(where: { $0.types.contains(BuiltInType.resourceAccess) }) {
            // A revoked grant ends the streams that needed it.
            grants.refresh()
            for subscriber in Array(state.subscribers.values)
            where await !grants.allows(subscriber.caller, subscriber.query.query.type) {
                subscriber.end()
                remove(subscriber.id, &state)
            }
        }
        let groups = state.groups.keys.filter { batch.concerns($0.query.query.type) }
        guard !groups.isEmpty else { return }
        // One read for every group: which changed objects match now, rendered once per group.
        let results = try await workRunner.read(.superuser) { work in
            var results: [GroupKey: Evaluation] = [:]
            var scopes: [Caller: AccessScope] = [:]
            for key in groups {
                let scope = try scopes[key.viewer] ?? AccessScope.of(key.viewer, schema: work.model.schema, in: work.tx)
                scopes[key.viewer] = scope
                results[key] = try Self.evaluate(key, batch, scope: scope, in: work)
            }
            return results
        }
        // Streams that hold the same of the changed objects get the same events, built and
        // encoded once; each loop gets one hop.
        var writes: [ObjectIdentifier: (loop: any EventLoop, writes: [(any StreamSink, EncodedEvents)])] = [:]
        for key in groups {
            guard let evaluation = results[key] else { continue }
            var outcomes: [[UInt8]: Subscriber.Outcome] = [:]
            for id in state.groups[key] ?? [] {
                guard let subscriber = state.subscribers[id] else { continue }
                let encoded: EncodedEvents?
                if batch.rightsChanged == nil {
                    let signature = subscriber.signature(of: batch)
                    let outcome = outcomes[signature] ?? Subscriber.outcome(evaluation, batch, signature: signature)
                    outcomes[signature] = outcome
                    subscriber.take(outcome, of: batch)
                    encoded = outcome.encoded
                } else {
                    let events = subscriber.follow(evaluation, batch)
                    encoded = events.isEmpty ? nil : Subscriber.encode(events)
                }
                guard let encoded else { continue }
                let loop = subscriber.sink.eventLoop
                writes[ObjectIdentifier(loop), default: (loop, [])].writes.append((subscriber.sink, encoded))
            }
        }
        for (loop, pending) in writes.values {
            // A sink that gives up on a reader that fell behind closes its connection itself, and
            // the stream ends as if its client had gone.
            loop.execute { for (sink, events) in pending { _ = sink.write(events, flush: true) } }
        }
    }

    /// Which of a batch's changed objects match `key`'s query now, rendered, and, when rights
    /// moved, the ids of everything that matches.
    static func evaluate(
        _ key: GroupKey,
        _ batch: ChangeBatch,
        scope: AccessScope,
        in work: UnitOfWork
    ) throws -> Evaluation {
        let query = key.query
        guard work.model.schema.types[query.query.type] != nil else {
            return Evaluation(rendered: [:], all: batch.rightsChanged == nil ? nil : [])
        }
        let wholly = batch.rightsChanged != nil
        let matching = try work.list(query.query, within: wholly ? nil : batch.order, as: scope)
        var rendered: [String: String] = [:]
        for entity in matching {
            rendered[entity.id] = try work.model.render(
                entity,
                nesting: query.nesting,
                view: query.view,
                as: scope,
                in: work.tx
            ).jsonString
        }
        return Evaluation(rendered: rendered, all: wholly ? matching.map(\.id) : nil)
    }

    /// What one group's query matches after a batch.
    struct Evaluation: Sendable {
        /// The matching changed objects (all matching ones when rights moved), as JSON text.
        var rendered: [String: String]
        var all: [String]?
    }
}
