import HeraldEvents
import HeraldSchema
import HeraldStorage
import Logging
import Synchronization

/// Runs units of work: opens the transaction, gives it the model of the schema its tables were
/// migrated to, commits it, delivers its events, tells caches what changed and runs its
/// `after…` hooks.
///
/// Work whose writes meet no hook runs on a storage thread; work with hooks runs on a hook
/// thread (an engine's), where `on…` hooks run inside the transaction and `after…` hooks after
/// the commit, each in a unit of work of its own whose failure is logged.
public final class WorkRunner: Sendable {
    public let storage: any StorageBackend
    /// Where committed events go out to open streams.
    public let events: EventHub
    /// Hands each commit's events to `events` in id order (and, on a shared database, the other
    /// processes' events).
    public let delivery: LogFollower
    public let hasher: any PasswordHasher
    let hookThreads: any HookThreads
    /// Group members for `sendEvent`, cached between changes to groups and users.
    let membership = MembershipCache()
    /// This process among the nodes sharing a database: its presence records carry it.
    public let nodeID = EntityID.generate()
    /// Refuse events whose type `events.json` does not declare.
    public let requireDeclaredEvents: Bool
    /// When the schema in force was loaded and the last edit refused.
    public let schemaStatus = SchemaStatus()
    let logger: Logger
    private let models: Mutex<(latest: Int64, byGeneration: [Int64: DataModel])>
    private let commitObservers = Mutex<[@Sendable (Set<String>) -> Void]>([])
    private let changeFollowers = Mutex<[@Sendable () -> Bool]>([])
    /// Writes in progress that did not record their changes: a new live query waits for them.
    let unrecorded = UnrecordedWrites()

    /// - Parameters:
    ///   - model: the model of the schema storage was migrated to at start-up, generation
    ///     `generation`.
    ///   - hooks: where work with lifecycle hooks runs.
    public init(
        model: DataModel,
        generation: Int64,
        storage: any StorageBackend,
        events: EventHub,
        hooks: any HookThreads,
        requireDeclaredEvents: Bool = false,
        logger: Logger
    ) {
        self.requireDeclaredEvents = requireDeclaredEvents
        self.models = Mutex((generation, [generation: model]))
        self.hasher = model.hasher
        self.storage = storage
        self.events = events
        self.delivery = LogFollower(hub: events, storage: storage, logger: logger)
        self.hookThreads = hooks
        self.logger = logger
        schemaStatus.loaded(generation: generation)
    }

    /// The model of the newest schema: what routing and planning use. A transaction uses the
    /// one of its own snapshot (`UnitOfWork.model`).
    public var model: DataModel {
        models.withLock { $0.byGeneration[$0.latest]! }
    }

    /// Puts a migrated schema in force; `generation` is the one its migration reported.
    public func install(_ model: DataModel, generation: Int64) {
        models.withLock { state in
            state.byGeneration[generation] = model
            if generation > state.latest { state.latest = generation }
            Self.forgetOld(&state)
        }
        membership.invalidate()
    }

    /// The model for a transaction: that of its schema generation, made from the transaction's
    /// schema when the migration has committed but not yet been installed.
    func model(for tx: any StorageTransaction) -> DataModel {
        let generation = tx.schemaGeneration
        if let model = models.withLock({ $0.byGeneration[generation] }) { return model }
        let model = DataModel(schema: tx.schema, hasher: hasher)
        models.withLock { state in
            state.byGeneration[generation] = state.byGeneration[generation] ?? model
            if generation > state.latest { state.latest = generation }
            Self.forgetOld(&state)
        }
        return model
    }

    /// How many schema generations keep their model.
    static let generationsKept: Int64 = 8

    private static func forgetOld(_ state: inout (latest: Int64, byGeneration: [Int64: DataModel])) {
        for generation in state.byGeneration.keys where generation <= state.latest - generationsKept {
            state.byGeneration[generation] = nil
        }
    }

    /// Calls `observer` after every commit with the types it wrote, so caches can follow changes.
    /// Of another process's commits it hears only of ``typesCachesFollow``.
    public func onCommit(_ observer: @escaping @Sendable (Set<String>) -> Void) {
        commitObservers.withLock { $0.append(observer) }
    }

    /// Has writes record the objects they change in the event log while `isFollowing` says so
    /// (live queries are open); without a follower they record nothing.
    public func recordChanges(while isFollowing: @escaping @Sendable () -> Bool) {
        changeFollowers.withLock { $0.append(isFollowing) }
    }

    /// Returns once every write that may have left its changes unrecorded, because it looked
    /// before a follower started following, has ended: what a follower reads next includes them.
    func unrecordedWritesEnded() async {
        await unrecorded.drain()
    }

    /// Whether a write should record its changes in the event log now.
    var changesAreFollowed: Bool {
        changeFollowers.withLock { $0 }.contains { $0() }
    }

    /// The types whose changes the caches follow (group members, grants, signed-in users): the
    /// only ones another process sharing the database needs to hear of.
    public static let typesCachesFollow = Set(BuiltInType.all)

    /// Another process sharing the database committed changes to objects of `types`, or,
    /// when nil, anything may have changed (its feed reconnected): caches follow as after a
    /// local commit.
    public func committedElsewhere(_ types: Set<String>?) {
        committed(types ?? Set(model.schema.types.keys))
    }

    func committed(_ types: Set<String>) {
        guard !types.isEmpty else { return }
        if types.contains(BuiltInType.group) || types.contains(BuiltInType.user) { membership.invalidate() }
        for observer in commitObservers.withLock({ $0 }) { observer(types) }
    }

    // MARK: Running units of work

    /// Runs `body` in a read snapshot, on a storage thread.
    public func read<T: Sendable>(_ caller: Caller, _ body: @escaping @Sendable (UnitOfWork) throws -> T) async throws
        -> T
    {
        let generation = membership.generation
        return try await storage.read { tx in
            try body(
                UnitOfWork(
                    workRunner: self,
                    tx: tx,
                    caller: caller,
                    readOnly: true,
                    hooks: nil,
                    membershipGeneration: generation
                )
            )
        }
    }

    /// Runs `body` in a write transaction. Without `hooks` it runs on a storage thread (no
    /// engine is involved); should it meet a hook after all (a reload added one), it starts
    /// again on a hook thread.
    public func write<T: Sendable>(
        _ caller: Caller,
        hooks: Bool,
        _ body: @escaping @Sendable (UnitOfWork) throws -> T
    ) async throws -> T {
        if !hooks {
            let ticket = UnrecordedWrites.Ticket()
            defer { unrecorded.end(ticket) }
            let generation = membership.generation
            do {
                let (value, changed) = try await storage.write { tx in
                    let work = UnitOfWork(
                        workRunner: self,
                        tx: tx,
                        caller: caller,
                        readOnly: false,
                        hooks: nil,
                        membershipGeneration: generation,
                        ticket: ticket
                    )
                    let value = try body(work)
                    try work.finish()
                    work.deliverEventsAfterCommit()
                    return (value, work.changedTypes)
                }
                committed(changed)
                return value
            } catch is NeedsHookThread {}
        }
        return try await hookThreads.withRunner { runner in try self.perform(caller, hooks: runner, body) }
    }

    /// Runs `body` as one unit of work on the calling thread, which must be a hook thread:
    /// opens the transaction, runs `body`, applies `$.error` failures, commits, then runs the
    /// `after…` hooks it queued.
    public func perform<T>(
        _ caller: Caller,
        readOnly: Bool = false,
        hooks: any LifecycleHookRunner,
        _ body: (UnitOfWork) throws -> T
    ) throws -> T {
        var after: [UnitOfWork.AfterHook] = []
        var changed: Set<String> = []
        let run: ((any StorageTransaction) throws -> T) throws -> T =
            readOnly ? { try self.storage.readBlocking($0) } : { try self.storage.writeBlocking($0) }
        let ticket = UnrecordedWrites.Ticket()
        defer { unrecorded.end(ticket) }
        let generation = membership.generation
        let result = try run { tx in
            let work = UnitOfWork(
                workRunner: self,
                tx: tx,
                caller: caller,
                readOnly: readOnly,
                hooks: hooks,
                membershipGeneration: generation,
                ticket: ticket
            )
            let value: T
            do {
                value = try body(work)
            } catch {
                if work.wantedWrite { throw NeedsWriteTransaction() }
                throw error
            }
            if work.wantedWrite { throw NeedsWriteTransaction() }
            try work.finish()
            after = work.afterHooks
            changed = work.changedTypes
            work.deliverEventsAfterCommit()
            return value
        }
        committed(changed)
        for hook in after {
            for method in hook.methods { runAfterHook(method, hook, caller: caller, hooks: hooks) }
        }
        return result
    }

    /// One `after…` hook in a unit of work of its own; a failure is logged, the commit stands.
    func runAfterHook(
        _ method: MethodDefinition,
        _ hook: UnitOfWork.AfterHook,
        caller: Caller,
        hooks: any LifecycleHookRunner
    ) {
        let ticket = UnrecordedWrites.Ticket()
        defer { unrecorded.end(ticket) }
        let generation = membership.generation
        do {
            let changed = try storage.writeBlocking { tx in
                let work = UnitOfWork(
                    workRunner: self,
                    tx: tx,
                    caller: caller,
                    readOnly: false,
                    hooks: hooks,
                    membershipGeneration: generation,
                    ticket: ticket
                )
                // `$.this` starts as the commit left it, without reading it again.
                if let written = hook.written?.value { tx.assume(written) }
                try hooks.run(method, this: hook.this, input: hook.input, in: work)
                try work.finish()
                work.deliverEventsAfterCommit()
                return work.changedTypes
            }
            committed(changed)
        } catch {
            logger.error(
                "\(method.lifecycleEvent?.rawValue ?? method.name) failed; the commit stands",
                metadata: [
                    "type": "\(method.typeName ?? "-")", "method": "\(method.name)", "file": "\(method.path)",
                    "error": "\(error)",
                ]
            )
        }
    }
}
