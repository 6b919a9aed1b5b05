import CJavaScriptCore
import Foundation
import HeraldSchema

/// One JavaScript engine: a context group and a global context that only its own thread touches.
///
/// Host functions and entity objects find their engine through the global object's private
/// data, and the running job's state through `session`.
public final class Engine {
    public let index: Int
    let group: JSContextGroupRef
    let context: JSGlobalContextRef
    /// The job being run; host functions read and write through it.
    var session: ScriptSession?
    /// Compiled methods by file path, with the source they were compiled from.
    var compiled: [String: (source: String, function: JSObjectRef)] = [:]
    /// Set by the time-limit callback when it stops a script.
    var timedOut = false
    var timeLimit: Duration = .seconds(5)
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

    /// Stops any single script after `limit`.
    func setTimeLimit(_ limit: Duration) {
        timeLimit = limit
        let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
        JSContextGroupSetExecutionTimeLimit(
            group,
            seconds,
            { _, opaque in
                Unmanaged<Engine>.fromOpaque(opaque!).takeUnretainedValue().timedOut = true
                return true
            },
            Unmanaged.passUnretained(self).toOpaque()
        )
    }

    func close() {
        for (_, entry) in compiled { JSValueUnprotect(context, entry.function) }
        compiled = [:]
        JSGlobalContextRelease(context)
        JSContextGroupRelease(group)
    }

    // MARK: Values

    func string(_ s: String) -> JSValueRef {
        let js = JSStringCreateWithUTF8CString(s)
        defer { JSStringRelease(js) }
        return JSValueMakeString(context, js)
    }

    static func swiftString(_ js: JSStringRef) -> String {
        let size = JSStringGetMaximumUTF8CStringSize(js)
        var buffer = [CChar](repeating: 0, count: size)
        let written = JSStringGetUTF8CString(js, &buffer, size)
        return String(decoding: buffer.prefix(max(0, written - 1)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
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
        timedOut = false
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
        timedOut = false
        let result = JSObjectCallAsFunction(context, function, this, arguments.count, &arguments, &exception)
        if let exception { throw scriptError(exception, location: location) }
        return result ?? undefined
    }

    /// Reads status, message and line from a thrown value.
    func scriptError(_ exception: JSValueRef, location: ScriptLocation?) -> ScriptError {
        var location = location
        let object = JSValueIsObject(context, exception) ? JSValueToObject(context, exception, nil) : nil
        if let object, let line = property(object, "line"), JSValueIsNumber(context, line) {
            location?.line = Int(JSValueToNumber(context, line, nil))
        }
        if timedOut {
            timedOut = false
            return .timedOut(limit: timeLimit, location: location)
        }
        guard let object else {
            return .failed(status: 422, message: swiftString(exception), location: location)
        }
        var status = 422
        if let value = property(object, "__heraldStatus"), JSValueIsNumber(context, value) {
            status = Int(JSValueToNumber(context, value, nil))
        }
        let message = property(object, "message").map { swiftString($0) } ?? swiftString(exception)
        return .failed(status: status, message: message.isEmpty ? swiftString(exception) : message, location: location)
    }
}
