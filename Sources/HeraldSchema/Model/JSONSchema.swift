import Foundation

/// A JSON Schema (draft 2020-12) of the keywords Herald checks: the shape of an event's payload.
///
/// Supported: `type` (one name or a list), `enum`, `const`, `properties`, `required`,
/// `additionalProperties` (a boolean or a schema), `items`, `minItems`, `maxItems`, `minLength`,
/// `maxLength`, `pattern`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`,
/// `anyOf`, `oneOf`, `allOf`, and the annotations `description`, `title`, `format`, `default`,
/// `examples` and `$comment`. Any other keyword is refused when the schema loads, so a typo
/// never turns a check off.
public struct JSONSchema: Sendable, Hashable {
    /// A JSON Schema type name.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case null, boolean, integer, number, string, array, object
    }

    /// The allowed types; nil allows any.
    public var types: [Kind]?
    public var enumValues: [JSONValue]?
    public var constValue: JSONValue?
    public var properties: OrderedDictionary<String, JSONSchema> = [:]
    public var required: [String] = []
    /// Whether members not in `properties` are allowed; `additionalSchema` is what they match.
    public var allowsAdditional = true
    private var additional: [JSONSchema] = []
    private var itemSchemas: [JSONSchema] = []
    public var minItems: Int?
    public var maxItems: Int?
    public var minLength: Int?
    public var maxLength: Int?
    public var pattern: String?
    public var minimum: Double?
    public var maximum: Double?
    public var exclusiveMinimum: Double?
    public var exclusiveMaximum: Double?
    public var anyOf: [JSONSchema] = []
    public var oneOf: [JSONSchema] = []
    public var allOf: [JSONSchema] = []
    public var description: String?
    /// The schema as written, for documents that show it (OpenAPI).
    public var source: JSONValue

    /// What the members not in `properties` must match, when they are allowed and constrained.
    public var additionalSchema: JSONSchema? { additional.first }
    /// What every element of an array must match.
    public var items: JSONSchema? { itemSchemas.first }

    static let annotations: Set<String> = ["description", "title", "format", "default", "examples", "$comment"]
    static let keywords: Set<String> = [
        "type", "enum", "const", "properties", "required", "additionalProperties", "items", "minItems",
        "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$schema",
    ]

    /// Reads a schema; `path` names where it is in its file, for the error.
    public init(parsing json: JSONValue, path: String) throws(SchemaError.Located) {
        source = json
        if case .bool(let allowed) = json {
            // `true` allows anything, `false` nothing.
            if !allowed { types = [] }
            return
        }
        guard case .object(let object) = json else {
            throw .init(path, "a JSON Schema is an object or a boolean, not \(json.kindName)")
        }
        for key in object.keys where !Self.keywords.contains(key) && !Self.annotations.contains(key) {
            throw .init(
                "\(path).\(key)",
                "unsupported JSON Schema keyword '\(key)'; supported: \(Self.keywords.sorted().joined(separator: ", "))"
            )
        }
        if let type = object["type"] {
            let names: [JSONValue] = type.arrayValue ?? [type]
            types = try names.map { name throws(SchemaError.Located) in
                guard let text = name.stringValue, let kind = Kind(rawValue: text) else {
                    throw .init(
                        "\(path).type",
                        "a type is one of \(Kind.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                return kind
            }
        }
        if let values = object["enum"] {
            guard let list = values.arrayValue, !list.isEmpty else {
                throw .init("\(path).enum", "enum is a non-empty list of values")
            }
            enumValues = list
        }
        constValue = object["const"]
        if let members = object["properties"] {
            guard let members = members.objectValue else {
                throw .init("\(path).properties", "properties maps member names to schemas")
            }
            for (name, schema) in members {
                properties[name] = try JSONSchema(parsing: schema, path: "\(path).properties.\(name)")
            }
        }
        if let names = object["required"] {
            guard let list = names.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
                throw .init("\(path).required", "required is a list of member names")
            }
            required = list.compactMap(\.stringValue)
        }
        switch object["additionalProperties"] {
        case nil: break
        case .bool(let allowed)?: allowsAdditional = allowed
        case let schema?: additional = [try JSONSchema(parsing: schema, path: "\(path).additionalProperties")]
        }
        if let items = object["items"] { itemSchemas = [try JSONSchema(parsing: items, path: "\(path).items")] }
        minItems = try Self.count(object, "minItems", path)
        maxItems = try Self.count(object, "maxItems", path)
        minLength = try Self.count(object, "minLength", path)
        maxLength = try Self.count(object, "maxLength", path)
        if let pattern = object["pattern"] {
            guard let text = pattern.stringValue, (try? NSRegularExpression(pattern: text)) != nil else {
                throw .init("\(path).pattern", "pattern is a regular expression")
            }
            self.pattern = text
        }
        minimum = try Self.number(object, "minimum", path)
        maximum = try Self.number(object, "maximum", path)
        exclusiveMinimum = try Self.number(object, "exclusiveMinimum", path)
        exclusiveMaximum = try Self.number(object, "exclusiveMaximum", path)
        anyOf = try Self.list(object, "anyOf", path)
        oneOf = try Self.list(object, "oneOf", path)
        allOf = try Self.list(object, "allOf", path)
        description = object["description"]?.stringValue
    }

    private static func count(_ object: JSONObject, _ key: String, _ path: String) throws(SchemaError.Located) -> Int? {
        guard let value = object[key] else { return nil }
        guard let count = value.intValue, count >= 0, count <= Int32.max else {
            throw .init("\(path).\(key)", "\(key) is a non-negative integer")
        }
        return Int(count)
    }

    private static func number(_ object: JSONObject, _ key: String, _ path: String) throws(SchemaError.Located)
        -> Double?
    {
        guard let value = object[key] else { return nil }
        guard let number = value.doubleValue else { throw .init("\(path).\(key)", "\(key) is a number") }
        return number
    }

    private static func list(_ object: JSONObject, _ key: String, _ path: String) throws(SchemaError.Located)
        -> [JSONSchema]
    {
        guard let value = object[key] else { return [] }
        guard let list = value.arrayValue, !list.isEmpty else {
            throw .init("\(path).\(key)", "\(key) is a non-empty list of schemas")
        }
        var schemas: [JSONSchema] = []
        for (index, schema) in list.enumerated() {
            schemas.append(try JSONSchema(parsing: schema, path: "\(path).\(key)[\(index)]"))
        }
        return schemas
    }
}

extension SchemaError {
    /// A problem at a field path, before the file it is in is known.
    public struct Located: Error, Sendable, Hashable {
        public var field: String
        public var message: String

        public init(_ field: String, _ message: String) {
            self.field = field
            self.message = message
        }

        /// The problem in `file`.
        public func `in`(_ file: String) -> SchemaError { SchemaError(file: file, field: field, message) }
    }
}
