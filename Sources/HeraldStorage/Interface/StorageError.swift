/// Errors the storage layer raises: requests it cannot map to the schema, and conditions of the
/// database itself, each with what to do about it.
public enum StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    case unknownType(String)
    case unknownProperty(type: String, property: String)
    /// The disk (or `maxDatabaseSize`) is full; nothing of the transaction was written.
    case full
    /// The query has more values or parameters than the database takes.
    case queryTooLarge
    /// The database file is damaged or not a database; `detail` is what the check reported.
    case damaged(path: String, detail: String)
    /// The write kept conflicting with concurrent writes (PostgreSQL's serialization failures
    /// or deadlocks) and was abandoned after `attempts` runs; nothing of it remains.
    case conflict(attempts: Int)
    /// The database server cannot be reached or dropped the connection; `detail` says how.
    case unavailable(detail: String)
    /// Any other database failure: the database's code (SQLite's result code, PostgreSQL's
    /// SQLSTATE) and message, never the statement or its arguments (they may hold user data).
    case database(code: String, message: String)

    public var description: String {
        switch self {
        case .unknownType(let t): "unknown type '\(t)'"
        case .unknownProperty(let t, let p): "unknown property '\(p)' on type '\(t)'"
        case .full:
            "the database is full (disk space or maxDatabaseSize); nothing was written, free space and try again"
        case .queryTooLarge: "the query has too many values or parameters; split it into smaller queries"
        case .conflict(let attempts):
            "the write conflicted with concurrent writes \(attempts) times and was abandoned; nothing was written, try again"
        case .unavailable(let detail): "the database is unavailable (\(detail)); try again once it is back"
        case .database(let code, let message): "database error (\(code)): \(message)"
        case .damaged(let path, let detail):
            "the database \(path) is damaged (\(detail)); restore it from a backup (herald backup) or move it away"
        }
    }
}
