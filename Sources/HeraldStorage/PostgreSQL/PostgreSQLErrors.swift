import HeraldSchema
import PostgresNIO

/// PostgreSQL's conditions as storage errors with actionable text.
enum PostgreSQLErrors {
    /// The SQLSTATE of a server error.
    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    /// A serialization failure or deadlock: running the whole transaction again may succeed.
    static func isConflict(_ error: any Error) -> Bool {
        ["40001", "40P01"].contains(sqlState(error))
    }

    /// The SQLSTATE with which `_herald_expect_generation` fails a transaction whose snapshot
    /// has another schema generation than it expected (a class of its own, "HG").
    static let generationChanged = "HG001"

    /// A migration committed since the transaction took the schema generation it expected.
    static func isGenerationChange(_ error: any Error) -> Bool {
        sqlState(error) == generationChanged
    }

    /// The connection broke: the connection cannot be used again.
    static func isConnectionLost(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError else { return false }
        return [.serverClosedConnection, .connectionError, .uncleanShutdown, .clientClosedConnection].contains(
            error.code
        )
            || sqlState(error)?.hasPrefix("08") == true || sqlState(error)?.hasPrefix("57P") == true
    }

    /// What the server said, never the statement or its arguments (they may hold user data).
    static func summary(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] { return message }
        return "\(error.code)"
    }

    /// A storage error for `error`: uniqueness violations name the property of `schema` they
    /// are about, as a validation error.
    static func translate(_ error: any Error, schema: Schema?) -> any Error {
        guard let state = sqlState(error) else {
            if isConnectionLost(error) { return StorageError.unavailable(detail: summary(error)) }
            return error
        }
        switch state {
        case "23505":
            let constraint = (error as? PSQLError)?.serverInfo?[.constraintName] ?? ""
            if let field = field(constraint, schema) {
                return DataError.validation([
                    FieldError(
                        token: "already_taken",
                        type: field.type,
                        property: field.property,
                        detail: "the value is taken"
                    )
                ])
            }
        case "53100": return StorageError.full
        case "54000", "54001", "54011", "54023": return StorageError.queryTooLarge
        default: if isConnectionLost(error) { return StorageError.unavailable(detail: summary(error)) }
        }
        return StorageError.database(code: "PostgreSQL \(state)", message: summary(error))
    }

    /// The type and property (or relationship) a unique index is named for.
    static func field(_ constraint: String, _ schema: Schema?) -> (type: String, property: String)? {
        guard let schema else { return nil }
        for type in schema.types.values {
            for property in type.properties.values where constraint == "ux_\(type.name)_\(property.name)" {
                return (type.name, property.name)
            }
        }
        for relationship in schema.relationships {
            let table = SQLName.linkTableName(relationship)
            if constraint == "\(table)_one" { return (relationship.sourceType, relationship.name) }
            if constraint == "\(table)_inverse_one", let target = relationship.targetTypes.first {
                return (target, relationship.inverseName ?? relationship.name)
            }
        }
        return nil
    }
}
