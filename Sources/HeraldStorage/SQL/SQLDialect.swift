import HeraldSchema

/// What differs between the SQL of the two backends: placeholders, literals, column types and
/// the few functions they spell differently. Everything else is the same text for both.
enum SQLDialect: Sendable {
    case sqlite
    case postgresql

    /// The placeholder of the `index`th argument (from 1): `?` or `$1`.
    func placeholder(_ index: Int) -> String {
        switch self {
        case .sqlite: "?"
        case .postgresql: "$\(index)"
        }
    }

    /// A condition that always holds.
    var alwaysTrue: String {
        switch self {
        case .sqlite: "1"
        case .postgresql: "TRUE"
        }
    }

    /// A condition that never holds.
    var alwaysFalse: String {
        switch self {
        case .sqlite: "0"
        case .postgresql: "FALSE"
        }
    }

    /// The column type for a property type.
    func columnType(_ type: PropertyType) -> String {
        switch (self, type) {
        case (.sqlite, .integer), (.sqlite, .boolean): "INTEGER"
        case (.sqlite, .number): "REAL"
        case (.postgresql, .integer), (.postgresql, .boolean): "BIGINT"
        case (.postgresql, .number): "DOUBLE PRECISION"
        case (_, .string), (_, .date), (_, .enumeration), (_, .json), (_, .password): "TEXT"
        }
    }
}

/// A value bound to a statement, in the form both backends store: booleans as 0 or 1, arrays
/// and objects (and every value of a JSON property) as their JSON text.
enum SQLArgument: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    init(_ value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool(let b): self = .integer(b ? 1 : 0)
        case .int(let i): self = .integer(i)
        case .double(let d): self = .real(d)
        case .string(let s): self = .text(s)
        case .array, .object: self = .text(value.jsonString)
        }
    }

    /// A value for a column of `type`: JSON properties always store their JSON text.
    init(_ value: JSONValue, for type: PropertyType) {
        if case .json = type, !value.isNull {
            self = .text(value.jsonString)
        } else {
            self.init(value)
        }
    }

    /// A stored value read back as the canonical JSON value of a property of `type`.
    func decoded(as type: PropertyType) -> JSONValue {
        switch self {
        case .null:
            return .null
        case .integer(let i):
            switch type {
            case .boolean: return .bool(i != 0)
            case .number: return .double(Double(i))
            default: return .int(i)
            }
        case .real(let d):
            return .double(d)
        case .text(let s):
            if case .json = type { return (try? JSONValue(parsing: s)) ?? .string(s) }
            return .string(s)
        }
    }
}

/// The arguments of one statement as it is built, handing out each one's placeholder. Add them
/// in the order their placeholders appear in the statement: SQLite's `?` are positional.
struct SQLArguments: Sendable {
    let dialect: SQLDialect
    private(set) var values: [SQLArgument] = []

    init(_ dialect: SQLDialect, _ values: [SQLArgument] = []) {
        self.dialect = dialect
        self.values = values
    }

    /// Adds `value` and returns its placeholder.
    mutating func add(_ value: SQLArgument) -> String {
        values.append(value)
        return dialect.placeholder(values.count)
    }

    /// Adds a text value and returns its placeholder.
    mutating func add(_ text: String) -> String { add(.text(text)) }

    /// Adds `values` and returns their placeholders, separated by commas.
    mutating func list(_ values: some Sequence<SQLArgument>) -> String {
        values.map { add($0) }.joined(separator: ", ")
    }
}
