import CJavaScriptCore
import HeraldEvents
import HeraldSchema
import HeraldStorage

/// The state of one transaction on an engine: the caller, `$.this`, arguments, the request-scoped
/// store, validation errors from `$.error`, and the `after…` hooks to run after commit.
final class ScriptSession {
    struct AfterHook {
        var methods: [MethodDefinition]
        var this: EntityReference?
        var data: JSONValue?
        var modifications: JSONValue?
    }

    let runtime: ScriptRuntime
    let tx: any StorageTransaction
    var caller: Caller
    var this: EntityReference?
    var arguments: JSONValue = .null
    var request: [String: String] = [:]
    /// `$.modifications` in `onSave` / `afterSave`.
    var modifications: JSONValue?
    /// `$.data` in `afterDelete`.
    var data: JSONValue?
    var store: [String: JSValueRef] = [:]
    var errors: [FieldError] = []
    var afterHooks: [AfterHook] = []
    /// Events raised in the transaction, already in the event log: delivered when it commits,
    /// gone with it if it rolls back.
    var events: [EventHub.Entry] = []
    /// Types written in this transaction, for caches that follow changes.
    var changedTypes: Set<String> = []
    /// The Swift error behind the JavaScript exception being thrown, so it surfaces unchanged.
    var hostError: (any Error)?
    /// Hooks running now, by `event:id`, so a hook's own writes do not trigger it again.
    var running: Set<String> = []
    /// A read snapshot: the first write attempt throws `NeedsWriteTransaction`.
    var readOnly = false
    /// Objects created in this transaction: changing them runs no `onSave` (their `onCreate` did).
    var created: Set<String> = []

    /// The model this transaction started with, kept even if the schema reloads meanwhile.
    let model: DataModel

    private var cachedScope: AccessScope?

    /// The caller's rights in this transaction (recomputed when `doPrivileged` changes the caller).
    var scope: AccessScope {
        get throws {
            if let cachedScope, cachedScope.caller == caller { return cachedScope }
            let scope = try AccessScope.of(caller, schema: model.schema, in: tx)
            cachedScope = scope
            return scope
        }
    }

    init(runtime: ScriptRuntime, tx: any StorageTransaction, caller: Caller) {
        self.runtime = runtime
        self.tx = tx
        self.caller = caller
        self.model = runtime.model
    }

    /// Fails the transaction with the errors `$.error` recorded.
    func finish() throws {
        if !errors.isEmpty { throw DataError.validation(errors) }
    }

    func releaseStore(_ engine: Engine) {
        for value in store.values { JSValueUnprotect(engine.context, value) }
        store = [:]
    }

    func type(_ name: String) throws -> TypeDefinition { try model.type(name) }

    /// Set once a write was attempted in a read snapshot, even if the script caught the error.
    var wantedWrite = false

    func requireWrite() throws {
        if readOnly {
            wantedWrite = true
            throw NeedsWriteTransaction()
        }
    }

    /// Appends an event to the log in this transaction (a write: a read snapshot restarts).
    func raise(type: String, data: String, to audience: Audience) throws {
        try requireWrite()
        events.append(try EventLog.append(type: type, data: data, audience: audience, in: tx))
    }

    /// Hands the transaction's events to the fan-out once it commits. Called last in the
    /// transaction; commit hooks run in commit order, so events leave in log order.
    func deliverEventsAfterCommit() {
        guard !events.isEmpty else { return }
        let (entries, hub) = (events, runtime.events)
        tx.afterCommit { hub.deliver(entries) }
    }

    @discardableResult
    func create(_ typeName: String, _ input: JSONObject, engine: Engine) throws -> StoredEntity {
        try requireWrite()
        let entity = try model.create(typeName, input, owner: caller.userID, as: try scope, in: tx)
        changedTypes.insert(typeName)
        created.insert(entity.id)
        let reference = EntityReference(type: typeName, id: entity.id)
        let type = try type(typeName)
        try runHooks(.onCreate, of: type, reference, engine: engine)
        queueAfter(.afterCreate, of: type, this: reference)
        return entity
    }

    func update(_ reference: EntityReference, _ input: JSONObject, engine: Engine) throws {
        try requireWrite()
        let type = try type(reference.type)
        let before = try model.get(reference.type, id: reference.id, as: try scope, in: tx)
        var beforeLinks: [String: [String]] = [:]
        for key in input.keys {
            if let end = type.relationships[key] { beforeLinks[key] = try tx.related(end, of: reference.id).map(\.id) }
        }
        let after = try model.update(reference.type, id: reference.id, input, as: try scope, in: tx)
        changedTypes.insert(reference.type)
        for key in input.keys {
            if let end = type.relationships[key] { changedTypes.formUnion(end.otherTypes) }
        }
        if created.contains(reference.id) { return }
        let modifications = try self.modifications(
            type,
            before: before,
            after: after,
            beforeLinks: beforeLinks,
            keys: input.keys
        )
        try runHooks(.onSave, of: type, reference, engine: engine, modifications: modifications)
        queueAfter(.afterSave, of: type, this: reference, modifications: modifications)
    }

    func delete(_ reference: EntityReference, engine: Engine) throws {
        try requireWrite()
        let type = try type(reference.type)
        let entity = try model.get(reference.type, id: reference.id, as: try scope, in: tx)
        try model.require(.delete, on: entity, try scope, in: tx)
        let data = try model.render(entity, depth: 0, as: try scope, in: tx)
        try runHooks(.onDelete, of: type, reference, engine: engine, data: data)
        try tx.delete(type: reference.type, id: reference.id)  // checked above, before the hooks
        changedTypes.insert(reference.type)
        queueAfter(.afterDelete, of: type, this: nil, data: data)
    }

    func runHooks(
        _ event: LifecycleEvent,
        of type: TypeDefinition,
        _ reference: EntityReference,
        engine: Engine,
        modifications: JSONValue? = nil,
        data: JSONValue? = nil
    ) throws {
        let hooks = type.hooks(for: event)
        let key = "\(event.rawValue):\(reference.id)"
        guard !hooks.isEmpty, !running.contains(key) else { return }
        running.insert(key)
        let saved = (self.modifications, self.data)
        self.modifications = modifications
        self.data = data
        defer {
            running.remove(key)
            (self.modifications, self.data) = saved
        }
        for method in hooks {
            _ = try runtime.invoke(method, engine: engine, session: self, this: reference, result: false)
        }
    }

    func queueAfter(
        _ event: LifecycleEvent,
        of type: TypeDefinition,
        this: EntityReference?,
        data: JSONValue? = nil,
        modifications: JSONValue? = nil
    ) {
        let hooks = type.hooks(for: event)
        guard !hooks.isEmpty else { return }
        afterHooks.append(AfterHook(methods: hooks, this: this, data: data, modifications: modifications))
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

/// Thrown when a script running in a read snapshot tries to write; the runtime restarts it in a
/// write transaction.
struct NeedsWriteTransaction: Error {}
