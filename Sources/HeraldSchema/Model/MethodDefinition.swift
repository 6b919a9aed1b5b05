/// When a lifecycle method runs, chosen by its name's prefix.
public enum LifecycleEvent: String, Sendable, Hashable, CaseIterable {
    case onCreate, onSave, onDelete, afterCreate, afterSave, afterDelete

    /// The event a method name triggers on, if it starts with a lifecycle prefix.
    public init?(methodName: String) {
        guard let event = Self.allCases.first(where: { methodName.hasPrefix($0.rawValue) }) else { return nil }
        self = event
    }

    /// Whether it runs inside the transaction, before commit.
    public var runsBeforeCommit: Bool {
        switch self {
        case .onCreate, .onSave, .onDelete: true
        case .afterCreate, .afterSave, .afterDelete: false
        }
    }
}

/// A script file: a type's method or hook, or a global method.
public struct MethodDefinition: Sendable, Hashable {
    /// The method name (the file name without `.js`).
    public var name: String
    /// The type it belongs to; `nil` for a global method.
    public var typeName: String?
    /// The file it was read from.
    public var path: String
    /// The script text.
    public let source: String
    /// Whether the source names `broadcastEvent` or `sendEvent` (in any of their spellings) or calls
    /// `publish(`: such
    /// a method writes to the event log, so it starts in a write transaction. Found once, at load.
    public let mayRaiseEvents: Bool

    public init(name: String, typeName: String?, path: String, source: String) {
        self.name = name
        self.typeName = typeName
        self.path = path
        self.source = source
        self.mayRaiseEvents = ["broadcastEvent", "sendEvent", "broadcast_event", "send_event", "publish("].contains {
            source.contains($0)
        }
    }

    /// The lifecycle event it hooks, if its name has a lifecycle prefix.
    public var lifecycleEvent: LifecycleEvent? { typeName == nil ? nil : LifecycleEvent(methodName: name) }

    /// Whether the script is StructrScript (`${ ... }`) rather than JavaScript.
    public var isStructrScript: Bool { StructrScript.expression(in: source) != nil }

    /// The body to run as a JavaScript function body: the source itself, or for StructrScript
    /// its translation, returned.
    public func javaScriptBody() throws(StructrScript.Error) -> String {
        guard let expression = StructrScript.expression(in: source) else { return source }
        return "return " + (try StructrScript.translate(expression)) + ";"
    }
}

extension String {
    var trimmingWhitespace: Substring {
        var s = self[...]
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return s
    }
}
