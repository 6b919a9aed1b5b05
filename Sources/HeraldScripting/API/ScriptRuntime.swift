import CJavaScriptCore
import HeraldEvents
import HeraldSchema
import HeraldStorage
import Logging
import Synchronization

/// Runs writes, lifecycle hooks and methods on the engine pool.
///
/// A whole transaction, with every hook it triggers, runs on one engine thread: the write
/// transaction is opened there (blocking, on that dedicated thread), `on…` hooks run inside it,
/// and `after…` hooks run after the commit, each in a new transaction whose failure is logged.
public final class ScriptRuntime: Sendable {
    private let current: Mutex<DataModel>
    private let commitObservers = Mutex<[@Sendable (Set<String>) -> Void]>([])
    /// Group members for `sendEvent`, cached between changes to groups and users.
    let membership = MembershipCache()
    public let storage: any StorageBackend
    public let pool: EnginePool
    /// Where `$.broadcastEvent` and `$.sendEvent` deliver, once their transaction commits.
    public let events: EventHub
    let logger: Logger

    public init(model: DataModel, storage: any StorageBackend, pool: EnginePool, events: EventHub, logger: Logger) {
        self.current = Mutex(model)
        self.storage = storage
        self.pool = pool
        self.events = events
        self.logger = logger
    }

    /// The model in force: a schema reload replaces it; running transactions keep theirs.
    public var model: DataModel { current.withLock { $0 } }

    /// The schema in force.
    public var schema: Schema { model.schema }

    /// Calls `observer` after every commit with the types it wrote, so caches can follow changes.
    public func onCommit(_ observer: @escaping @Sendable (Set<String>) -> Void) {
        commitObservers.withLock { $0.append(observer) }
    }

    func committed(_ types: Set<String>) {
        guard !types.isEmpty else { return }
        if types.contains(BuiltInType.group) || types.contains(BuiltInType.user) { membership.invalidate() }
        for observer in commitObservers.withLock({ $0 }) { observer(types) }
    }

    /// Puts a reloaded schema's model in force for transactions that start from now on.
    public func replaceModel(_ model: DataModel) {
        current.withLock { $0 = model }
        membership.invalidate()
    }

    /// Compiles every method of `schema` on an engine, so a bad edit is refused before it serves.
    public func checkScripts(of schema: Schema) async throws {
        let methods = schema.globalMethods + schema.types.values.flatMap(\.methods)
        try await pool.run { engine in
            for method in methods {
                let location = ScriptLocation(
                    typeName: method.typeName,
                    method: method.name,
                    file: method.path,
                    line: nil
                )
                _ = try engine.compile(method, location: location)
            }
        }
    }

    /// Creates objects in one transaction, running their hooks; returns their ids.
    public func create(_ type: String, _ inputs: [JSONObject], caller: Caller) async throws -> [String] {
        try await pool.run { engine in
            try self.transaction(engine, caller: caller) { session in
                try inputs.map { try session.create(type, $0, engine: engine).id }
            }
        }
    }

    /// Updates one object, running its `onSave` hooks; returns its REST form.
    public func update(_ type: String, id: String, _ input: JSONObject, caller: Caller) async throws -> JSONValue {
        try await pool.run { engine in
            try self.transaction(engine, caller: caller) { session in
                let scope = try session.scope
                try session.update(EntityReference(type: type, id: id), input, engine: engine)
                return try session.model.render(
                    try session.model.get(type, id: id, in: session.tx),
                    as: scope,
                    in: session.tx
                )
            }
        }
    }

    /// Deletes one object, running its `onDelete` and `afterDelete` hooks.
    public func delete(_ type: String, id: String, caller: Caller) async throws {
        try await pool.run { engine in
            try self.transaction(engine, caller: caller) { session in
                try session.delete(EntityReference(type: type, id: id), engine: engine)
            }
        }
    }

    /// Runs a method: global (`type` nil), static (`id` nil) or on an object. Returns its result.
    public func call(
        method: MethodDefinition,
        id: String?,
        arguments: JSONValue,
        request: [String: String],
        caller: Caller
    ) async throws -> JSONValue {
        try await pool.run { engine in
            // Methods first run in a read snapshot, so read-only methods run in parallel on
            // several engines; the first write attempt restarts the method in a write
            // transaction (SQLite has one writer). Effects are transactional, so nothing leaks
            // from the abandoned attempt.
            let run = { (session: ScriptSession) in
                try self.runMethod(
                    method,
                    id: id,
                    arguments: arguments,
                    request: request,
                    engine: engine,
                    session: session
                )
            }
            // A method that raises events writes to the event log: it starts as a write.
            if method.mayRaiseEvents { return try self.transaction(engine, caller: caller, run) }
            do {
                return try self.transaction(engine, caller: caller, readOnly: true, run)
            } catch is NeedsWriteTransaction {
                return try self.transaction(engine, caller: caller, run)
            }
        }
    }

    func runMethod(
        _ method: MethodDefinition,
        id: String?,
        arguments: JSONValue,
        request: [String: String],
        engine: Engine,
        session: ScriptSession
    ) throws -> JSONValue {
        var this: EntityReference?
        if let typeName = method.typeName, let id {
            this = EntityReference(
                type: typeName,
                // An object the caller cannot see is not found, as if it did not exist.
                id: try session.model.get(typeName, id: id, as: try session.scope, in: session.tx).id
            )
        }
        session.arguments = arguments
        session.request = request
        return try invoke(method, engine: engine, session: session, this: this, result: true)
    }

    /// Opens a write transaction on `engine`, runs `body` with a session, applies `$.error`
    /// failures, commits, then runs the `after…` hooks it queued.
    func transaction<T>(_ engine: Engine, caller: Caller, readOnly: Bool = false, _ body: (ScriptSession) throws -> T)
        throws -> T
    {
        var after: [ScriptSession.AfterHook] = []
        var changed: Set<String> = []
        let run: ((any StorageTransaction) throws -> T) throws -> T =
            readOnly ? { try self.storage.readBlocking($0) } : { try self.storage.writeBlocking($0) }
        let result = try run { tx in
            let session = ScriptSession(runtime: self, tx: tx, caller: caller)
            session.readOnly = readOnly
            let previous = engine.session
            engine.session = session
            defer {
                engine.session = previous
                session.releaseStore(engine)
            }
            let value: T
            do {
                value = try body(session)
            } catch {
                if session.wantedWrite { throw NeedsWriteTransaction() }
                throw error
            }
            if session.wantedWrite { throw NeedsWriteTransaction() }
            try session.finish()
            after = session.afterHooks
            changed = session.changedTypes
            session.deliverEventsAfterCommit()
            return value
        }
        committed(changed)
        for hook in after {
            for method in hook.methods {
                do {
                    let raised = try storage.writeBlocking { tx in
                        let session = ScriptSession(runtime: self, tx: tx, caller: caller)
                        session.data = hook.data
                        session.modifications = hook.modifications
                        let previous = engine.session
                        engine.session = session
                        defer {
                            engine.session = previous
                            session.releaseStore(engine)
                        }
                        _ = try invoke(method, engine: engine, session: session, this: hook.this, result: false)
                        try session.finish()
                        session.deliverEventsAfterCommit()
                        return session.changedTypes
                    }
                    committed(raised)
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
        return result
    }

    /// Runs one method with `this`; returns its JSON result (entities in REST form) when asked.
    func invoke(
        _ method: MethodDefinition,
        engine: Engine,
        session: ScriptSession,
        this: EntityReference?,
        result: Bool
    )
        throws -> JSONValue
    {
        let location = ScriptLocation(typeName: method.typeName, method: method.name, file: method.path, line: nil)
        let function = try engine.compile(method, location: location)
        let previousThis = session.this
        session.this = this
        session.hostError = nil
        defer { session.this = previousThis }
        let value: JSValueRef
        do {
            value = try engine.call(function, location: location)
        } catch {
            // A stopped script reports the stop, whatever the host call it was in raised.
            if let stop = engine.stop { throw engine.stopError(stop, location: location) }
            if let hostError = session.hostError {
                session.hostError = nil
                throw hostError
            }
            throw error
        }
        guard result else { return .null }
        return try engine.resultJSON(value)
    }
}

extension Engine {
    /// The compiled function for a method file, compiled again when its source changed.
    func compile(_ method: MethodDefinition, location: ScriptLocation) throws(ScriptError) -> JSObjectRef {
        if let cached = compiled[method.path], cached.source == method.source { return cached.function }
        let body: String
        do {
            body = try method.javaScriptBody()
        } catch {
            throw .failed(status: 422, message: "StructrScript: \(error)", location: location)
        }
        // Same line as the first source line, so error lines match the file.
        let wrapped = "(function () {" + body + "\n})"
        let value = try evaluate(wrapped, file: method.path, location: location)
        guard let function = JSValueToObject(context, value, nil) else {
            throw .failed(status: 500, message: "could not compile", location: location)
        }
        if let old = compiled[method.path] { JSValueUnprotect(context, old.function) }
        JSValueProtect(context, function)
        compiled[method.path] = (method.source, function)
        return function
    }

    /// `JSON.stringify` of a script result, parsed back: entities come out in their REST form.
    func resultJSON(_ value: JSValueRef) throws -> JSONValue {
        if JSValueIsUndefined(context, value) { return .null }
        var exception: JSValueRef?
        guard let json = JSValueCreateJSONString(context, value, 0, &exception) else {
            if let exception { throw scriptError(exception, location: nil) }
            return .null
        }
        defer { JSStringRelease(json) }
        do {
            return try JSONValue(parsing: Engine.swiftString(json))
        } catch {
            throw ScriptError.failed(
                status: 422,
                message: "the result cannot be returned as JSON (\(error)); return a flatter value",
                location: nil
            )
        }
    }
}
