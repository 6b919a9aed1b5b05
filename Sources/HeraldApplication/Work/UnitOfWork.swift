import HeraldEvents
import HeraldSchema
import HeraldStorage

/// Everything one transaction touches: the transaction, the schema it was migrated to, the
/// caller's access scope, the events it raised, the types it changed, and the `after…` hooks
/// it queued. REST reads, REST writes and scripts all run through one.
///
/// A unit of work lives on the thread running its transaction and is never shared; the
/// `WorkRunner` that opened it commits it, delivers its events and runs its `after…` hooks.
public final class UnitOfWork {
    /// An `after…` hook queued for after the commit, with the values it sees.
    struct AfterHook {
        var methods: [MethodDefinition]
        var this: EntityReference?
        var input: HookInput
        /// `this` as the unit of work left it (taken when it finishes): the hook starts from it.
        var written: WrittenEntity?
    }

    public let tx: any StorageTransaction
    /// The model of the schema this transaction's tables were migrated to.
    public let model: DataModel
    /// Who acts; `$.doPrivileged` raises it to the superuser for a while.
    public var caller: Caller
    /// Validation failures recorded by `$.error`: the unit fails with them when it finishes.
    public var validationErrors: [FieldError] = []
    /// Types written in this transaction, for caches that follow changes.
    public private(set) var changedTypes: Set<String> = []
    /// Set once a write was attempted in a read snapshot, even if a script caught the error.
    public private(set) var wantedWrite = false

    let workRunner: WorkRunner
    let readOnly: Bool
    /// Runs `on…` hooks on this thread; nil for a unit of work that runs on a storage thread
    /// because none of its writes has hooks.
    let hooks: (any LifecycleHookRunner)?
    /// The write's place among those that may leave changes unrecorded; given back by whoever
    /// runs the transaction once it has ended.
    let ticket: UnrecordedWrites.Ticket?
    /// The membership cache's generation before the transaction began: what it reads of groups
    /// is cached only if no commit cleared the cache since.
    let membershipGeneration: Int
    /// Events raised in the transaction and appended to the event log: delivered when it
    /// commits, gone with it if it rolls back.
    public private(set) var appended: [EventLog.Appended] = []
    /// Events raised and checked, appended to the log at the end of the unit of work
    /// (``flushEvents()``): the transaction then holds PostgreSQL's event lock only for its
    /// commit's round trip.
    private var raised: [EventLog.Raised] = []
    /// The events raised so far for streams (change records left out): with the ids the log
    /// gave them once the transaction has committed, with id 0 before.
    public var raisedEvents: [EventHub.Entry] {
        Self.forStreams(appended)
            + raised.map {
                EventHub.Entry(
                    event: ServerEvent(id: 0, type: $0.type, data: $0.data),
                    audience: $0.audience,
                    created: .now
                )
            }
    }

    /// The events of `appended` for streams, with their ids once committed.
    public static func forStreams(_ appended: [EventLog.Appended]) -> [EventHub.Entry] {
        appended.flatMap { $0.entries ?? $0.raised }.filter { $0.audience != .changes }
    }
    private(set) var afterHooks: [AfterHook] = []
    /// Hooks running now, by `event:id`, so a hook's own writes do not trigger it again.
    private var running: Set<String> = []
    /// Objects created in this transaction: changing them runs no `onSave` (their `onCreate` did).
    private var created: Set<String> = []
    private var cachedScope: AccessScope?

    init(
        workRunner: WorkRunner,
        tx: any StorageTransaction,
        caller: Caller,
        readOnly: Bool,
        hooks: (any LifecycleHookRunner)?,
        membershipGeneration: Int,
        ticket: UnrecordedWrites.Ticket? = nil
    ) {
        self.workRunner = workRunner
        self.membershipGeneration = membershipGeneration
        self.ticket = ticket
        self.tx = tx
        self.model = workRunner.model(for: tx)
        self.caller = caller
        self.readOnly = readOnly
        self.hooks = hooks
    }

    /// The caller's rights in this transaction (recomputed when the caller changes). Its
    /// groups come from the membership cache unless this transaction changed groups or users.
    public var scope: AccessScope {
        get throws {
            if let cachedScope, cachedScope.caller == caller { return cachedScope }
            let scope: AccessScope
            if let user = caller.userID, !caller.isAdmin, !changesMembership {
                let (schema, tx) = (model.schema, tx)
                let principals = try workRunner.membership.principals(of: user, asOf: membershipGeneration) {
                    try AccessScope.principals(of: user, schema: schema, in: tx)
                }
                scope = AccessScope(caller: caller, principals: principals)
            } else {
                scope = try AccessScope.of(caller, schema: model.schema, in: tx)
            }
            cachedScope = scope
            return scope
        }
    }

    /// Refuses a write in a read snapshot; the work runner restarts the work as a write.
    public func requireWrite() throws {
        if readOnly {
            wantedWrite = true
            throw NeedsWriteTransaction()
        }
    }

    /// Appends an event to the log in this transaction; it is delivered once the transaction
    /// commits. A type declared in `events.json` must carry a message matching its schema; an
    /// undeclared one is refused when the server requires declarations.
    public func raise(type: String, data: String, to audience: Audience) throws {
        // A read snapshot restarts as a write first: the message is checked once.
        try requireWrite()
        if let declaration = model.schema.events[type] {
            do {
                try declaration.validate(message: data)
            } catch {
                throw DataError.invalidInput("the event '\(type)' does not match its schema in events.json: \(error)")
            }
        } else if workRunner.requireDeclaredEvents, audience != .changes {
            throw DataError.invalidInput(
                "the event type '\(type)' is not declared in events.json, and this server requires declarations"
            )
        }
        raised.append((type, data, audience))
    }

    /// Appends the events raised so far to the event log, in the order raised.
    public func flushEvents() throws {
        guard !raised.isEmpty else { return }
        appended.append(try EventLog.append(raised, in: tx))
        raised = []
    }

    /// Whether any open stream belongs to one of `users`: of this process, or, on a database
    /// several nodes share, of a node that recorded its presence within ``Presence/expiry``.
    public func hasStreams(forAnyOf users: Set<String>) throws -> Bool {
        if workRunner.events.hasStreams(forAnyOf: users) { return true }
        guard workRunner.storage is any SharedStorageBackend else { return false }
        let since = Timestamp(
            millisecondsSince1970: Timestamp.now.millisecondsSince1970 - Presence.expiry.components.seconds * 1000
        )
        return try tx.isPresent(anyOf: users, otherThan: workRunner.nodeID, seenSince: since)
    }

    /// The users among `roots`, with every member of every group, through nested groups; a
    /// group met twice (a cycle) is expanded once. Groups come from the membership cache unless
    /// this transaction changed groups or users itself.
    public func users(in roots: [EntityReference]) throws -> Set<String> {
        let fresh = changesMembership
        var users = Set<String>()
        for root in roots {
            if root.type == BuiltInType.user {
                users.insert(root.id)
            } else if fresh {
                users.formUnion(try members(of: root.id))
            } else {
                users.formUnion(
                    try workRunner.membership.users(of: root.id, asOf: membershipGeneration) {
                        try members(of: root.id)
                    }
                )
            }
        }
        return users
    }

    /// Whether this transaction wrote groups or users, so that cached memberships may be stale
    /// in it.
    var changesMembership: Bool {
        changedTypes.contains(BuiltInType.group) || changedTypes.contains(BuiltInType.user)
    }

    /// Walks `Group.members` from one group in this transaction.
    func members(of group: String) throws -> Set<String> {
        guard let members = model.schema.types[BuiltInType.group]?.relationships["members"] else { return [] }
        var users = Set<String>()
        var seenGroups = Set<String>()
        var queue = [EntityReference(type: BuiltInType.group, id: group)]
        while let next = queue.popLast() {
            if next.type == BuiltInType.user {
                users.insert(next.id)
            } else if seenGroups.insert(next.id).inserted {
                queue.append(contentsOf: try tx.related(members, of: next.id))
            }
        }
        return users
    }

    /// Adds or takes `permissions` on `node` for a user or group: needs `accessControl` on it.
    public func changeGrant(
        _ permissions: Set<Permission>,
        of principal: String,
        on node: EntityReference,
        granting: Bool
    )
        throws
    {
        try requireWrite()
        let entity = try model.get(node.type, id: node.id, as: try scope, in: tx)
        try model.require(.accessControl, on: entity, try scope, in: tx)
        if granting {
            try tx.grant(permissions, to: principal, on: node.id)
        } else {
            try tx.revoke(permissions, from: principal, on: node.id)
        }
    }

    /// Fails the transaction with the errors `$.error` recorded; otherwise, while live queries
    /// follow changes, records every object the transaction changed in the event log.
    func finish() throws {
        if !validationErrors.isEmpty { throw DataError.validation(validationErrors) }
        let changes = tx.changes
        if !changes.isEmpty {
            // In line before looking, so a live query that starts following now waits for us.
            if let ticket { workRunner.unrecorded.take(ticket) }
            if workRunner.changesAreFollowed {
                raised += changes.map { (Self.changeEventType, $0.logData, .changes) }
                if let ticket { workRunner.unrecorded.end(ticket) }
            }
        }
        try flushEvents()
        for index in afterHooks.indices {
            guard let this = afterHooks[index].this else { continue }
            afterHooks[index].written = tx.written(type: this.type, id: this.id)
        }
    }

    /// The type of the log's change records.
    static let changeEventType = "change"

    /// The objects of `query` that `scope` may read, narrowed to `within` when given: what a
    /// REST list and a live query show.
    public func list(_ query: EntityQuery, within ids: [String]? = nil, as scope: AccessScope) throws -> [StoredEntity]
    {
        try tx.fetch(Self.narrowed(query, within: ids, as: scope))
    }

    /// `query` narrowed to the objects `scope` may read and, when given, to `ids`.
    public static func narrowed(_ query: EntityQuery, within ids: [String]?, as scope: AccessScope) -> EntityQuery {
        var query = query
        var narrowing: [Filter] = []
        if let ids { narrowing.append(.anyOf(SystemProperty.id, ids.map(JSONValue.string))) }
        if let visibility = scope.visibilityFilter { narrowing.append(visibility) }
        if !narrowing.isEmpty { query.filter = .and((query.filter.map { [$0] } ?? []) + narrowing) }
        return query
    }

    /// Hands the transaction's events to the fan-out once it commits. Called last in the
    /// transaction; commit hooks run in commit order, so events leave in log order.
    func deliverEventsAfterCommit() {
        guard !appended.isEmpty else { return }
        let (appended, delivery) = (appended, workRunner.delivery)
        tx.afterCommit { delivery.deliver(appended.flatMap { $0.entries ?? [] }) }
    }

    // MARK: Writes with their lifecycle

    /// Creates an object, runs its `onCreate` hooks and queues its `afterCreate` hooks.
    @discardableResult
    public func create(_ typeName: String, _ input: JSONObject) throws -> StoredEntity {
        try requireWrite()
        let type = try model.type(typeName)
        let entity = try model.create(typeName, input, owner: caller.userID, as: try scope, in: tx)
        changedTypes.insert(typeName)
        created.insert(entity.id)
        let reference = EntityReference(type: typeName, id: entity.id)
        try runHooks(.onCreate, of: type, reference, HookInput())
        try queueAfter(.afterCreate, of: type, this: reference, HookInput())
        return entity
    }

    /// Updates an object, runs its `onSave` hooks with `$.modifications` and queues `afterSave`.
    /// An object created in this transaction runs no `onSave`: its `onCreate` did.
    public func update(_ reference: EntityReference, _ input: JSONObject) throws {
        try requireWrite()
        let type = try model.type(reference.type)
        let before = try model.get(reference.type, id: reference.id, as: try scope, in: tx)
        let watchesSaves = type.hasHooks(for: .onSave)
        var beforeLinks: [String: [String]] = [:]
        if watchesSaves {
            for key in input.keys {
                if let end = type.relationships[key] {
                    beforeLinks[key] = try tx.related(end, of: reference.id).map(\.id)
                }
            }
        }
        let after = try model.update(reference.type, id: reference.id, input, as: try scope, in: tx)
        changedTypes.insert(reference.type)
        for key in input.keys {
            if let end = type.relationships[key] { changedTypes.formUnion(end.otherTypes) }
        }
        guard watchesSaves, !created.contains(reference.id) else { return }
        let modifications = try self.modifications(
            type,
            before: before,
            after: after,
            beforeLinks: beforeLinks,
            keys: input.keys
        )
        try runHooks(.onSave, of: type, reference, HookInput(modifications: modifications))
        try queueAfter(.afterSave, of: type, this: reference, HookInput(modifications: modifications))
    }

    /// Deletes an object after its `onDelete` hooks; queues `afterDelete` with its last rendering.
    public func delete(_ reference: EntityReference) throws {
        try requireWrite()
        let type = try model.type(reference.type)
        let entity = try model.get(reference.type, id: reference.id, as: try scope, in: tx)
        try model.require(.delete, on: entity, try scope, in: tx)
        let data = type.hasHooks(for: .onDelete) ? try model.render(entity, nesting: .ids, as: try scope, in: tx) : nil
        try runHooks(.onDelete, of: type, reference, HookInput(data: data))
        try tx.delete(type: reference.type, id: reference.id)  // checked above, before the hooks
        changedTypes.insert(reference.type)
        try queueAfter(.afterDelete, of: type, this: nil, HookInput(data: data))
    }

    func runHooks(_ event: LifecycleEvent, of type: TypeDefinition, _ reference: EntityReference, _ input: HookInput)
        throws
    {
        let methods = type.hooks(for: event)
        let key = "\(event.rawValue):\(reference.id)"
        guard !methods.isEmpty, !running.contains(key) else { return }
        guard let hooks else { throw NeedsHookThread() }
        running.insert(key)
        defer { running.remove(key) }
        for method in methods { try hooks.run(method, this: reference, input: input, in: self) }
    }

    func queueAfter(_ event: LifecycleEvent, of type: TypeDefinition, this: EntityReference?, _ input: HookInput)
        throws
    {
        let methods = type.hooks(for: event)
        guard !methods.isEmpty else { return }
        guard hooks != nil else { throw NeedsHookThread() }
        afterHooks.append(AfterHook(methods: methods, this: this, input: input))
    }

    /// `{before, after, added, removed}` for the keys an update set.
    func modifications(
        _ type: TypeDefinition,
        before: StoredEntity,
        after: StoredEntity,
        beforeLinks: [String: [String]],
        keys: some Sequence<String>
    ) throws -> JSONValue {
        var old = JSONObject()
        var new = JSONObject()
        var added = JSONObject()
        var removed = JSONObject()
        for key in keys {
            if let end = type.relationships[key] {
                let was = Set(beforeLinks[key] ?? [])
                let now = try tx.related(end, of: after.id).map(\.id)
                added[key] = .array(now.filter { !was.contains($0) }.map(JSONValue.string))
                removed[key] = .array((beforeLinks[key] ?? []).filter { !now.contains($0) }.map(JSONValue.string))
            } else if let property = type.property(named: key), !property.writeOnly {
                let a = before.values[key] ?? .null
                let b = after.values[key] ?? .null
                if a != b {
                    old[key] = a
                    new[key] = b
                }
            }
        }
        return ["before": .object(old), "after": .object(new), "added": .object(added), "removed": .object(removed)]
    }
}

/// Thrown when work running in a read snapshot tries to write; the work runner restarts it in
/// a write transaction.
public struct NeedsWriteTransaction: Error {
    public init() {}
}

/// Thrown when work running without a hook thread meets a hook (a reload added one since the
/// work was planned); the work runner restarts it on a hook thread.
struct NeedsHookThread: Error {}
