/// Why a value does not fit a property; `token` is the Structr-style error token.
public struct ValueError: Error, Sendable, Hashable {
    public var token: String
    public var detail: String

    public init(token: String, detail: String) {
        self.token = token
        self.detail = detail
    }
}

extension PropertyDefinition {
    /// Checks `value` against the property type and returns its canonical form: integers as
    /// `.int`, numbers as `.double`, dates as canonical ISO 8601 strings. `null` passes through.
    /// Passwords are returned as given; storage hashes them.
    public func coerce(_ value: JSONValue) throws(ValueError) -> JSONValue {
        if value.isNull { return .null }
        switch type {
        case .string, .password:
            guard case .string(let text) = value else { throw mismatch("must_be_string", "a string", value) }
            // Stored text ends at U+0000 in SQLite's C interface: refuse it rather than cut it.
            guard !text.utf8.contains(0) else {
                throw ValueError(token: "must_not_contain_nul", detail: "the string contains U+0000")
            }
            return value
        case .integer:
            guard let i = value.intValue else { throw mismatch("must_be_integer", "an integer", value) }
            return .int(i)
        case .number:
            guard let d = value.doubleValue else { throw mismatch("must_be_number", "a number", value) }
            return .double(d)
        case .boolean:
            guard case .bool = value else { throw mismatch("must_be_boolean", "true or false", value) }
            return value
        case .date:
            switch value {
            case .string(let s):
                guard let t = Timestamp(iso8601: s) else {
                    throw ValueError(token: "must_be_date", detail: "'\(s)' is not an ISO 8601 date")
                }
                return .string(t.iso8601)
            case .int(let ms):
                guard Timestamp.representableRange.contains(ms) else {
                    throw ValueError(token: "must_be_date", detail: "\(ms) ms is outside the years 0000...9999")
                }
                return .string(Timestamp(millisecondsSince1970: ms).iso8601)
            default:
                throw mismatch("must_be_date", "an ISO 8601 date string", value)
            }
        case .enumeration(let values):
            guard case .string(let s) = value, values.contains(s) else {
                throw ValueError(
                    token: "must_be_one_of",
                    detail: "\(value) is not one of \(values.map { "'\($0)'" }.joined(separator: ", "))"
                )
            }
            return value
        case .json:
            return value
        }
    }

    private func mismatch(_ token: String, _ expected: String, _ value: JSONValue) -> ValueError {
        ValueError(token: token, detail: "expected \(expected), got \(value.kindName)")
    }

    /// Whether `value` counts as empty for `required`: null, or an empty string.
    public static func isEmpty(_ value: JSONValue?) -> Bool {
        switch value {
        case nil, .null?: true
        case .string(let s)?: s.isEmpty
        default: false
        }
    }
}
