import CJavaScriptCore
import Foundation

/// An error a host function throws into JavaScript.
struct JSThrow: Error {
    var message: String
    var kind = "Error"
    var status: Int?
}

/// A JavaScript exception a host call passes on unchanged (whatever was thrown: `null` too).
struct JSRethrow: Error, @unchecked Sendable {
    /// Only ever touched on the engine thread that caught it.
    var value: JSValueRef
}

/// The Swift closure behind a JavaScript function object.
final class HostFunction {
    typealias Body = (Engine, JSObjectRef?, [JSValueRef]) throws -> JSValueRef
    let name: String
    let body: Body

    init(name: String, body: @escaping Body) {
        self.name = name
        self.body = body
    }

    /// JSClass objects are immutable once created and may be shared by every context group.
    nonisolated(unsafe) static let jsClass: JSClassRef = {
        var definition = kJSClassDefinitionEmpty
        definition.className = UnsafePointer(strdup("HeraldFunction"))
        definition.callAsFunction = { ctx, function, this, count, arguments, exception in
            let engine = Engine.of(ctx)
            let host = Unmanaged<HostFunction>.fromOpaque(JSObjectGetPrivate(function)!).takeUnretainedValue()
            let args: [JSValueRef] = (0..<count).map { arguments?[$0] ?? JSValueMakeUndefined(ctx)! }
            do {
                // A stopped script does no more host work, even if it caught the termination.
                try engine.checkDeadline()
                let result = try host.body(engine, this, args)
                try engine.checkDeadline()
                return result
            } catch {
                exception?.pointee = engine.jsError(for: error, in: host.name)
            }
            return JSValueMakeUndefined(ctx)
        }
        definition.finalize = { object in
            Unmanaged<HostFunction>.fromOpaque(JSObjectGetPrivate(object)!).release()
        }
        return JSClassCreate(&definition)
    }()
}

extension Engine {
    /// The JavaScript exception for a Swift error raised by a host function or entity access.
    /// Errors other than `JSThrow` are remembered, so that if the script does not catch the
    /// exception, the original error (validation tokens and all) is what the caller sees.
    func jsError(for error: any Error, in function: String) -> JSValueRef {
        switch error {
        case let error as JSRethrow:
            return error.value
        case let error as JSThrow:
            return makeError(error.message, kind: error.kind, status: error.status)
        case let error as ScriptError:
            job?.hostError = error
            return makeError(error.description, status: error.status)
        default:
            job?.hostError = error
            return makeError("\(function): \(error)")
        }
    }

    /// A JavaScript function backed by `body`, with `Function.prototype` so `.call` works.
    func makeFunction(_ name: String, _ body: @escaping HostFunction.Body) -> JSObjectRef {
        let host = HostFunction(name: name, body: body)
        let object = JSObjectMake(context, HostFunction.jsClass, Unmanaged.passRetained(host).toOpaque())!
        if let functionPrototype { JSObjectSetPrototype(context, object, functionPrototype) }
        return object
    }
}

extension ScriptError {
    /// The HTTP status this error answers with. The one place a script's status becomes HTTP:
    /// one outside 400...599 (`$.assert(false, 1000)`, a thrown `__heraldStatus`) answers 422.
    public var status: Int {
        switch self {
        case .overloaded, .shutDown, .engineStuck: 503
        case .failed(let status, _, _): (400...599).contains(status) ? status : 422
        case .timedOut, .memoryExceeded: 422
        }
    }
}
