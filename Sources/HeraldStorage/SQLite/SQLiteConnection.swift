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

    /// SQLite runs it at once: there is no answer to wait for.
    func write(_ sql: String, _ arguments: SQLArguments) throws {
        try execute(sql, arguments)
    }

    func writeReturning(_ sql: String, _ arguments: SQLArguments) throws -> PendingRows {
        let rows = try rows(sql, arguments)
        return PendingRows(read: { rows }, committed: { rows })
    }

    func schemaGeneration() throws -> Int64 {
        try SQLTransaction.generation(self)
    }

    func afterCommit(_ action: @escaping @Sendable () -> Void) {
        db.afterNextTransaction(onCommit: { _ in action() })
    }

    /// SQLite has one writer: commit order is already the order ids are handed out, and they
    /// are known at once.
    func appendEvents(_ events: ArraySlice<EventToLog>) throws -> AppendedEventIDs {
        var arguments = SQLArguments(.sqlite)
        let sql =
            "INSERT INTO _herald_events (type, data, audience, created) VALUES "
            + SQLTransaction.eventRows(events, &arguments) + " RETURNING id"
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
