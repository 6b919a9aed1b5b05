/// The value type of a property.
public enum PropertyType: Sendable, Hashable {
    case string
    case integer
    case number
    case boolean
    /// An instant; ISO 8601 text on the wire.
    case date
    /// One of a fixed list of strings.
    case enumeration([String])
    /// Any JSON value, stored as text.
    case json
    /// A write-only secret, stored only as a slow hash (the built-in `User.password`).
    case password

    /// The name used in type files.
    public var name: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .number: "number"
        case .boolean: "boolean"
        case .date: "date"
        case .enumeration: "enum"
        case .json: "json"
        case .password: "password"
        }
    }

    /// The type names a type file may use.
    public static let fileTypeNames = ["string", "integer", "number", "boolean", "date", "enum", "json"]
}

/// A property of a type: its value type and modifiers.
public struct PropertyDefinition: Sendable, Hashable {
    public var name: String
    public var type: PropertyType
    /// A value must be present (and non-empty) after every write.
    public var required: Bool
    /// No two objects of the type may share a non-null value.
    public var unique: Bool
    /// Queries on the property are backed by an index.
    public var indexed: Bool
    /// The value stored on create when the input has none.
    public var defaultValue: JSONValue?
    /// Set by the system; writes are refused.
    public var readOnly: Bool
    /// Never output (passwords).
    public var writeOnly: Bool

    public init(
        name: String,
        type: PropertyType,
        required: Bool = false,
        unique: Bool = false,
        indexed: Bool = false,
        defaultValue: JSONValue? = nil,
        readOnly: Bool = false,
        writeOnly: Bool = false
    ) {
        self.name = name
        self.type = type
        self.required = required
        self.unique = unique
        self.indexed = indexed
        self.defaultValue = defaultValue
        self.readOnly = readOnly
        self.writeOnly = writeOnly
    }
}
