import HeraldSchema

/// One validation problem, with a Structr-style token.
public struct FieldError: Sendable, Hashable {
    public var token: String
    public var type: String
    public var property: String
    public var detail: String?

    public init(token: String, type: String, property: String, detail: String? = nil) {
        self.token = token
        self.type = type
        self.property = property
        self.detail = detail
    }

    /// The error as JSON, as REST answers show it.
    public var json: JSONValue {
        var object: JSONObject = ["token": .string(token), "type": .string(type), "property": .string(property)]
        if let detail { object["detail"] = .string(detail) }
        return .object(object)
    }
}

/// Why a data operation was refused. Nothing was written.
public enum DataError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No such type.
    case unknownType(String)
    /// No object of the type with that id.
    case notFound(type: String, id: String)
    /// One or more values were refused.
    case validation([FieldError])
    /// The input has the wrong shape (not an object, and the like).
    case invalidInput(String)
    /// The caller may see the object but not do this to it.
    case forbidden(String)

    public var description: String {
        switch self {
        case .unknownType(let t): "unknown type '\(t)'"
        case .notFound(let t, let id): "no \(t) with id \(id)"
        case .validation(let errors):
            "validation failed: " + errors.map { "\($0.type).\($0.property): \($0.token)" }.joined(separator: ", ")
        case .invalidInput(let message): message
        case .forbidden(let message): message
        }
    }
}
