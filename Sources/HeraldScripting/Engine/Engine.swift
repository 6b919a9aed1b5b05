import CJavaScriptCore
import Foundation
import HeraldSchema
import Logging

/// One JavaScript engine: a context group and a global context that only its own thread touches.
///
/// Host functions and entity objects find their engine through the global object's private
/// data, and the running job's state through `job`.
public final class Engine {
    public let index: Int
    let group: JSContextGroupRef
    let context: JSGlobalContextRef
    /// The job being run; host functions read and write through it.
    var job: ScriptJob?
    /// Where `$.log` writes.
    var logger = Logger(label: "herald.scripting")
    /// While the script console runs a snippet here, the `$.log` lines it wrote.
    var transcript: [String]?
    /// Compiled methods by file path, with the source they were compiled from.
    var compiled: [String: (source: String, function: JSObjectRef)] = [:]
    /// Why the running script was stopped, once the watchdog stopped it.
    var stop: StopReason? {
        didSet { if stop != nil { needsReplacement = true } }
    }
    /// Whether the engine should be replaced by a new one after the job it runs: any script of
    /// the job was stopped, and a stopped script may leave a pending termination or a heap past
    /// the limit behind (a later script of the same job clearing `stop` does not undo that).
    private(set) var needsReplacement = false
    var timeLimit: Duration = .seconds(5)
    /// The most bytes this engine's JavaScript heap may hold while a script runs.
    var memoryLimit = 512 << 20
    /// When the script running now must stop.
    var deadline = ContinuousClock.now
    /// Nested calls into JavaScript (hooks run inside host calls); limits start at depth 0.
    var depth = 0
    /// `Function.prototype`, given to host functions so scripts can `.call` and `.apply` them.
    var functionPrototype: JSValueRef?

    /// JSClass objects are immutable once created and may be shared by every context group.
    nonisolated(unsafe) static let globalClass: JSClassRef = {
        var definition = kJSClassDefinitionEmpty
        definition.className = UnsafePointer(strdup("HeraldGlobal"))
        return JSClassCreate(&definition)
    }()

    public init(index: Int) {
        self.index = index
        group = JSContextGroupCreate()
        context = JSGlobalContextCreateInGroup(group, Self.globalClass)
        JSObjectSetPrivate(JSContextGetGlobalObject(context), Unmanaged.passUnretained(self).toOpaque())
        functionPrototype = property(JSContextGetGlobalObject(context), "Function")
            .flatMap { JSValueToObject(context, $0, nil) }
            .flatMap { property($0, "prototype") }
        installAPI()
    }

    /// The engine that owns `ctx`.
    static func of(_ ctx: JSContextRef?) -> Engine {
        let global = JSContextGetGlobalObject(ctx)
        return Unmanaged<Engine>.fromOpaque(JSObjectGetPrivate(global)!).takeUnretainedValue()
    }

    /// The watchdog checks time and memory this often while a script runs.
    static let watchdogSlice = 0.01

    /// Stops any single script after `time` or once the heap holds more than `memory` bytes.
    func setLimits(time: Duration, memory: Int) {
        timeLimit = time
        memoryLimit = memory
    }

    /// Starts the clock for one top-level run: the stop of an earlier run is never inherited.
    func beginRun() {
        stop = nil
        deadline = .now + timeLimit
        armWatchdog(Self.watchdogSlice)
    }

    /// JavaScriptCore calls the watchdog once per armed slice; it re-arms itself until the
    /// deadline or the memory limit is passed, and from then on always answers "terminate".
    func armWatchdog(_ seconds: Double) {
        JSContextGroupSetExecutionTimeLimit(
            group,
            seconds,
            { context, opaque in
                Unmanaged<Engine>.fromOpaque(opaque!).takeUnretainedValue().shouldTerminate(context)
            },
            Unmanaged.passUnretained(self).toOpaque()
        )
    }

    func shouldTerminate(_ ctx: JSContextRef?) -> Bool {
        if stop != nil { return true }
        if ContinuousClock.now >= deadline {
            stop = .timeLimit
            return true
        }
        if heapBytes() > memoryLimit {
            stop = .memoryLimit
            return true
        }
        armWatchdog(Self.watchdogSlice)
        return false
    }

    /// The heap's capacity plus the memory held outside it (strings, buffers).
    func heapBytes() -> Int {
        guard let statistics = JSGetMemoryUsageStatistics(context) else { return 0 }
        let capacity = property(statistics, "heapCapacity").map { JSValueToNumber(context, $0, nil) } ?? 0
        let extra = property(statistics, "extraMemorySize").map { JSValueToNumber(context, $0, nil) } ?? 0
        return Self.int(capacity + extra) ?? .max
    }

    /// A stopped script stays stopped: a host call that caught the termination (a `toJSON`
    /// inside `$.log`, a callback inside `$.doPrivileged`) re-arms the watchdog at once, so
    /// the script is terminated again as soon as it runs on.
    func reassertStop() {
        guard stop != nil else { return }
        armWatchdog(0.001)
    }

    /// Fails a host call that is doing long native work once the deadline has passed.
    func checkDeadline() throws(JSThrow) {
        if stop == nil, depth > 0, ContinuousClock.now >= deadline { stop = .timeLimit }
        guard stop != nil else { return }
        reassertStop()
        throw JSThrow(message: "script stopped")
    }

    /// `Int(d)` for numbers scripts produce: nil for NaN, infinities and values out of range,
    /// where `Int(d)` would trap.
    static func int(_ d: Double) -> Int? {
        guard d.isFinite, d >= -9.0e15, d <= 9.0e15 else { return nil }
        return Int(d)
    }

    func close() {
        for (_, entry) in compiled { JSValueUnprotect(context, entry.function) }
        compiled = [:]
        JSGlobalContextRelease(context)
        JSContextGroupRelease(group)
    }

    // MARK: Values

    func string(_ s: String) -> JSValueRef {
        let js = Self.jsString(s)
        defer { JSStringRelease(js) }
        return JSValueMakeString(context, js)
    }

    /// A JavaScript string with every character of `s`, U+0000 included.
    static func jsString(_ s: String) -> JSStringRef {
        let units = Array(s.utf16)
        return units.withUnsafeBufferPointer { JSStringCreateWithCharacters($0.baseAddress, $0.count) }
    }

    /// The whole string, U+0000 included (the UTF-8 C string form would end there).
    static func swiftString(_ js: JSStringRef) -> String {
        let length = JSStringGetLength(js)
        guard length > 0, let characters = JSStringGetCharactersPtr(js) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: characters, count: length), as: UTF16.self)
    }

    /// `String(value)` in JavaScript.
    func swiftString(_ value: JSValueRef?) -> String {
        guard let value, let js = JSValueToStringCopy(context, value, nil) else { return "" }
        defer { JSStringRelease(js) }
        return Self.swiftString(js)
    }

    func property(_ object: JSObjectRef, _ name: String) -> JSValueRef? {
        let js = JSStringCreateWithUTF8CString(name)
        defer { JSStringRelease(js) }
        return JSObjectGetProperty(context, object, js, nil)
    }

    func setProperty(_ object: JSObjectRef, _ name: String, _ value: JSValueRef?) {
        let js = JSStringCreateWithUTF8CString(name)
        defer { JSStringRelease(js) }
        JSObjectSetProperty(context, object, js, value, JSPropertyAttributes(kJSPropertyAttributeNone), nil)
    }

    var undefined: JSValueRef { JSValueMakeUndefined(context) }
    var null: JSValueRef { JSValueMakeNull(context) }

    // MARK: Errors

    /// A JavaScript error object; `kind` is the constructor (`Error`, `TypeError`).
    func makeError(_ message: String, kind: String = "Error", status: Int? = nil) -> JSValueRef {
        let global = JSContextGetGlobalObject(context)!
        var arguments: [JSValueRef?] = [string(message)]
        let constructor = property(global, kind).flatMap { JSValueToObject(context, $0, nil) }
        let error =
            constructor.flatMap { JSObjectCallAsConstructor(context, $0, 1, &arguments, nil) }
            ?? JSObjectMakeError(context, 1, &arguments, nil)!
        if let status { setProperty(error, "__heraldStatus", JSValueMakeNumber(context, Double(status))) }
        return error
    }

    /// Evaluates `source` as a global script (used for the API prelude and tests).
    @discardableResult
    func evaluate(_ source: String, file: String = "<herald>", location: ScriptLocation? = nil) throws(ScriptError)
        -> JSValueRef
    {
        let script = JSStringCreateWithUTF8CString(source)
        let url = JSStringCreateWithUTF8CString(file)
        defer {
            JSStringRelease(script)
            JSStringRelease(url)
        }
        var exception: JSValueRef?
        if depth == 0 { beginRun() }
        depth += 1
        defer { depth -= 1 }
        let result = JSEvaluateScript(context, script, nil, url, 1, &exception)
        if let exception { throw scriptError(exception, location: location) }
        return result ?? undefined
    }

    /// Calls `function` with `arguments`; a thrown JavaScript value becomes a `ScriptError`.
    func call(
        _ function: JSObjectRef,
        this: JSObjectRef? = nil,
        _ arguments: [JSValueRef?] = [],
        location: ScriptLocation?
    )
        throws(ScriptError) -> JSValueRef
    {
        var exception: JSValueRef?
        var arguments = arguments
        if depth == 0 { beginRun() }
        depth += 1
        defer { depth -= 1 }
        let result = JSObjectCallAsFunction(context, function, this, arguments.count, &arguments, &exception)
        if let exception { throw scriptError(exception, location: location) }
        return result ?? undefined
    }

    /// Reads status, message and line from a thrown value. Anything a script throws gives a
    /// clear error: `null`, objects with odd `line` or status values, strings.
    func scriptError(_ exception: JSValueRef, location: ScriptLocation?) -> ScriptError {
        var location = location
        if let stop { return stopError(stop, location: location) }
        let object = JSValueIsObject(context, exception) ? JSValueToObject(context, exception, nil) : nil
        if let object, let line = property(object, "line"), JSValueIsNumber(context, line),
            let number = Self.int(JSValueToNumber(context, line, nil)), number > 0
        {
            location?.line = number
        }
        guard let object else {
            return .failed(status: 422, message: swiftString(exception), location: location)
        }
        var status = 422
        if let value = property(object, "__heraldStatus"), JSValueIsNumber(context, value),
            let number = Self.int(JSValueToNumber(context, value, nil))
        {
            status = number
        }
        let message = property(object, "message").map { swiftString($0) } ?? swiftString(exception)
        return .failed(status: status, message: message.isEmpty ? swiftString(exception) : message, location: location)
    }

    /// The error for a script the watchdog stopped.
    func stopError(_ stop: StopReason, location: ScriptLocation?) -> ScriptError {
        switch stop {
        case .timeLimit: .timedOut(limit: timeLimit, location: location)
        case .memoryLimit: .memoryExceeded(limit: memoryLimit, location: location)
        }
    }
}

/// Why the watchdog stopped a script.
enum StopReason: Sendable, Hashable {
    case timeLimit
    case memoryLimit
}
