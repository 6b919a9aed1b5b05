import CJavaScriptCore
import HeraldApplication
import HeraldSchema
import HeraldStorage

/// Runs methods (global, static and on objects) on the engine pool, each as one unit of work.
///
/// A method, with every hook it triggers, runs on one engine thread: its transaction is opened
/// there (blocking, on that dedicated thread) by the work runner.
public final class MethodRunner: Sendable {
    public let workRunner: WorkRunner
    public let pool: EnginePool

    public init(workRunner: WorkRunner, pool: EnginePool) {
        self.workRunner = workRunner
        self.pool = pool
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

    /// Runs a method: global (`type` nil), static (`id` nil) or on an object. Returns its result.
    public func call(
        method: MethodDefinition,
        id: String?,
        arguments: JSONValue,
        request: [String: String],
        caller: Caller
    ) async throws -> JSONValue {
        let workRunner = self.workRunner
        return try await pool.run { engine in
            // Methods first run in a read snapshot, so read-only methods run in parallel on
            // several engines; the first write attempt restarts the method in a write
            // transaction (SQLite has one writer). Effects are transactional, so nothing leaks
            // from the abandoned attempt.
            let run = { (work: UnitOfWork) in
                try engine.withJob(for: work) { job in
                    try engine.runMethod(method, id: id, arguments: arguments, request: request, job: job)
                }
            }
            // A method that raises events writes to the event log: it starts as a write.
            if method.mayRaiseEvents { return try workRunner.perform(caller, hooks: engine, run) }
            do {
                return try workRunner.perform(caller, readOnly: true, hooks: engine, run)
            } catch is NeedsWriteTransaction {
                return try workRunner.perform(caller, hooks: engine, run)
            }
        }
    }
}

extension Engine {
    func runMethod(
        _ method: MethodDefinition,
        id: String?,
        arguments: JSONValue,
        request: [String: String],
        job: ScriptJob
    ) throws -> JSONValue {
        var this: EntityReference?
        if let typeName = method.typeName, let id {
            this = EntityReference(
                type: typeName,
                // An object the caller cannot see is not found, as if it did not exist.
                id: try job.model.get(typeName, id: id, as: try job.scope, in: job.tx).id
            )
        }
        job.arguments = arguments
        job.request = request
        return try invoke(method, job: job, this: this, result: true)
    }

    /// Runs one method with `this`; returns its JSON result (entities in REST form) when asked.
    func invoke(_ method: MethodDefinition, job: ScriptJob, this: EntityReference?, result: Bool) throws -> JSONValue {
        let value = try invokeValue(method, job: job, this: this)
        guard result else { return .null }
        return try resultJSON(value)
    }

    /// Runs one method with `this` and returns the JavaScript value it returned.
    func invokeValue(_ method: MethodDefinition, job: ScriptJob, this: EntityReference?) throws -> JSValueRef {
        let location = ScriptLocation(typeName: method.typeName, method: method.name, file: method.path, line: nil)
        let function = try compile(method, location: location)
        let previousThis = job.this
        job.this = this
        job.hostError = nil
        defer { job.this = previousThis }
        do {
            return try call(function, location: location)
        } catch {
            // A stopped script reports the stop, whatever the host call it was in raised.
            if let stop { throw stopError(stop, location: location) }
            if let hostError = job.hostError {
                job.hostError = nil
                throw hostError
            }
            throw error
        }
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
            return try JSONValue(parsingScriptOutput: Engine.swiftString(json))
        } catch {
            throw ScriptError.failed(
                status: 422,
                message: "the result cannot be returned as JSON (\(error)); return a flatter value",
                location: nil
            )
        }
    }
}
