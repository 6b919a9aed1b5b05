import HeraldSchema

/// One row of a result: its columns by name, with their stored values.
struct SQLRow: Sendable {
    var columns: [String]
    var values: [SQLArgument]

    subscript(_ column: String) -> SQLArgument {
        guard let at = columns.firstIndex(of: column) else { return .null }
        return values[at]
    }

    func text(_ column: String) -> String {
        if case .text(let s) = self[column] { return s }
        return ""
    }

    func integer(_ column: String) -> Int64? { self[column].integerValue }
}

/// The rows a statement returns, read when asked for (``SQLConnection/writeReturning(_:_:)``).
struct PendingRows {
    /// The rows, read inside the transaction: a failure of the statement (or of one before it)
    /// fails the transaction.
    let read: () throws -> [SQLRow]
    /// The rows once the transaction has committed; nil if the statement failed.
    let committed: @Sendable () -> [SQLRow]?
}

/// What a backend gives ``SQLTransaction``: statements run on the transaction's connection,
/// synchronously, on the calling thread.
protocol SQLConnection: AnyObject {
    var dialect: SQLDialect { get }

    /// Runs a query and returns its rows.
    func rows(_ sql: String, _ arguments: SQLArguments) throws -> [SQLRow]

    /// Runs a statement and returns how many rows it changed.
    @discardableResult
    func execute(_ sql: String, _ arguments: SQLArguments) throws -> Int

    /// Runs a statement whose answer the transaction does not wait for: a failure may surface
    /// at a later statement or at the commit, and fails the transaction there.
    func write(_ sql: String, _ arguments: SQLArguments) throws

    /// Runs a statement that returns rows as ``write(_:_:)`` runs one: they are read when asked
    /// for, and a failure surfaces there too.
    func writeReturning(_ sql: String, _ arguments: SQLArguments) throws -> PendingRows

    /// The migration generation of the transaction's snapshot.
    func schemaGeneration() throws -> Int64

    /// Runs `action` once the transaction has committed; never if it rolls back.
    func afterCommit(_ action: @escaping @Sendable () -> Void)

    /// Appends events to the event log (at most ``SQLTransaction/eventsPerInsert``); the ids it
    /// gave come in the order ``AppendedEventIDs`` hands them over. PostgreSQL serialises the
    /// transactions that append events from the append to their commit, so that ids follow
    /// commit order.
    func appendEvents(_ events: ArraySlice<EventToLog>) throws -> AppendedEventIDs

    /// Called when the login session stored under `key` was deleted.
    func didEndSession(key: String)
}

extension SQLConnection {
    func rows(_ sql: String) throws -> [SQLRow] { try rows(sql, SQLArguments(dialect)) }

    func execute(_ sql: String) throws { try execute(sql, SQLArguments(dialect)) }

    /// The first column of the first row.
    func value(_ sql: String, _ arguments: SQLArguments) throws -> SQLArgument {
        try rows(sql, arguments).first?.values.first ?? .null
    }

    func integer(_ sql: String, _ arguments: SQLArguments) throws -> Int64? {
        try value(sql, arguments).integerValue
    }
}

extension SQLArgument {
    /// The value as an integer, when it is one (or a whole real, or text of digits).
    var integerValue: Int64? {
        switch self {
        case .integer(let i): i
        case .real(let d): Int64(exactly: d)
        case .text(let s): Int64(s)
        case .null: nil
        }
    }
}
