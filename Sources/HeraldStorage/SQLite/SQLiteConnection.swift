import GRDB

/// ``SQLTransaction``'s statements on a GRDB connection, through its statement cache: the SQL
/// for a type is built the same way every time, so each statement is compiled once.
final class SQLiteConnection: SQLConnection {
    let db: Database
    var dialect: SQLDialect { .sqlite }

    init(_ db: Database) { self.db = db }

    func rows(_ sql: String, _ arguments: SQLArguments) throws -> [SQLRow] {
        let statement = try db.cachedStatement(sql: sql)
        let columns = statement.columnNames
        return try Row.fetchAll(statement, arguments: Self.bound(arguments)).map { row in
            SQLRow(columns: columns, values: row.databaseValues.map(Self.value))
        }
    }

    @discardableResult
    func execute(_ sql: String, _ arguments: SQLArguments) throws -> Int {
        try db.cachedStatement(sql: sql).execute(arguments: Self.bound(arguments))
        return db.changesCount
    }

    func afterCommit(_ action: @escaping @Sendable () -> Void) {
        db.afterNextTransaction(onCommit: { _ in action() })
    }

    /// SQLite has one writer: commit order is already the order ids are handed out, and they
    /// are known at once.
    func appendEvents(_ sql: String, _ arguments: SQLArguments) throws -> AppendedEventIDs {
        let ids = AppendedEventIDs()
        ids.resolve(try rows(sql, arguments).compactMap { $0.integer("id") }.sorted())
        return ids
    }

    func didEndSession(key: String) {}

    static func bound(_ arguments: SQLArguments) -> StatementArguments {
        StatementArguments(arguments.values.map(\.databaseValue))
    }

    static func value(_ value: DatabaseValue) -> SQLArgument {
        switch value.storage {
        case .null, .blob: .null
        case .int64(let i): .integer(i)
        case .double(let d): .real(d)
        case .string(let s): .text(s)
        }
    }
}

extension SQLArgument {
    var databaseValue: DatabaseValue {
        switch self {
        case .null: .null
        case .integer(let i): i.databaseValue
        case .real(let d): d.databaseValue
        case .text(let s): s.databaseValue
        }
    }
}
