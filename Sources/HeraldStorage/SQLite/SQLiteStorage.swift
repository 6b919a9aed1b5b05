import Foundation
import GRDB
import HeraldSchema
import Logging

/// The embedded backend: one SQLite file in WAL mode through a GRDB `DatabasePool`.
public final class SQLiteStorage: StorageBackend {
    let pool: DatabasePool
    let logger: Logger
    /// The schema the tables were last migrated to; read by transactions to decode rows.
    let layout: Layout

    /// The database file's name inside the data folder.
    public static let fileName = "herald.sqlite"

    /// Opens (or creates) `herald.sqlite` in `directory` and runs SQLite's quick check on it:
    /// a damaged file is refused with `StorageError.damaged` rather than served.
    ///
    /// - Parameter maxSize: the most bytes the database may grow to (0: no limit but the disk).
    public init(directory: URL, maxSize: Int = 0, logger: Logger = Logger(label: "herald.storage")) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(Self.fileName).path
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.label = "herald"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            if maxSize > 0 {
                let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
                try db.execute(sql: "PRAGMA max_page_count = \(max(1, maxSize / pageSize))")
            }
        }
        do {
            self.pool = try DatabasePool(path: path, configuration: configuration)
            let result = try pool.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
            guard result == ["ok"] else {
                try? pool.close()
                throw StorageError.damaged(path: path, detail: result.prefix(3).joined(separator: "; "))
            }
        } catch let error as DatabaseError where [.SQLITE_NOTADB, .SQLITE_CORRUPT].contains(error.resultCode) {
            throw StorageError.damaged(path: path, detail: error.message ?? "\(error.resultCode)")
        }
        self.logger = logger
        self.layout = Layout()
        try pool.write { db in
            try db.execute(
                sql:
                    "CREATE TABLE IF NOT EXISTS _herald_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT"
            )
        }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        let layout = self.layout
        return try await Self.translatingErrorsAsync {
            try await pool.read { db in try body(try SQLTransaction(connection: SQLiteConnection(db), layout: layout)) }
        }
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        let layout = self.layout
        return try await Self.translatingErrorsAsync {
            try await pool.write { db in try body(try SQLTransaction(connection: SQLiteConnection(db), layout: layout))
            }
        }
    }

    public func writeBlocking<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        try Self.translatingErrors {
            try pool.write { db in try body(try SQLTransaction(connection: SQLiteConnection(db), layout: layout)) }
        }
    }

    public func readBlocking<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        try Self.translatingErrors {
            try pool.read { db in try body(try SQLTransaction(connection: SQLiteConnection(db), layout: layout)) }
        }
    }

    /// Checkpoints the WAL into the database file (so the file alone is a complete copy), then
    /// closes the database; later calls fail.
    public func close() throws {
        do {
            _ = try pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        } catch {
            logger.warning("checkpoint at close failed; the WAL keeps the newest rows: \(error)")
        }
        try pool.close()
    }

    /// SQLite's conditions as storage errors with actionable text; the rest unchanged.
    static func translate(_ error: any Error) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        switch error.resultCode {
        case .SQLITE_FULL: return StorageError.full
        case .SQLITE_CONSTRAINT where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE:
            // "UNIQUE constraint failed: Type.property": a concurrent writer took the value
            // between the check and the insert.
            let target = error.message?.components(separatedBy: "failed: ").last ?? ""
            let parts = target.split(separator: ",").first?.split(separator: ".").map(String.init) ?? []
            guard parts.count == 2 else {
                return StorageError.database(
                    code: "SQLite \(error.extendedResultCode.rawValue)",
                    message: error.message ?? ""
                )
            }
            return DataError.validation([
                FieldError(token: "already_taken", type: parts[0], property: parts[1], detail: "the value is taken")
            ])
        case .SQLITE_TOOBIG: return StorageError.queryTooLarge
        case .SQLITE_ERROR where Self.tooLargeMessages.contains { error.message?.contains($0) == true }:
            return StorageError.queryTooLarge
        default:
            return StorageError.database(
                code: "SQLite \(error.extendedResultCode.rawValue)",
                message: error.message ?? ""
            )
        }
    }

    /// SQLite's words for a statement over its limits.
    static let tooLargeMessages = ["too many SQL variables", "too many terms", "Expression tree is too large"]

    static func translatingErrors<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw translate(error) }
    }

    static func translatingErrorsAsync<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch { throw translate(error) }
    }
}

extension SQLiteStorage {
    /// The database file in `directory`, which must exist (the tools never create one).
    static func existingFile(in directory: URL) throws -> String {
        let path = directory.appendingPathComponent(fileName).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw StorageError.damaged(path: path, detail: "no database file")
        }
        return path
    }

    /// SQLite's full integrity check of the database in `directory`: `["ok"]` or the problems.
    public static func integrityCheck(directory: URL) throws -> [String] {
        let path = try existingFile(in: directory)
        do {
            let queue = try DatabaseQueue(path: path)
            defer { try? queue.close() }
            return try queue.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        } catch let error as DatabaseError where [.SQLITE_NOTADB, .SQLITE_CORRUPT].contains(error.resultCode) {
            throw StorageError.damaged(path: path, detail: error.message ?? "\(error.resultCode)")
        }
    }

    /// A consistent copy of the database in `directory` at `destination`, taken with SQLite's
    /// online backup while a server may be writing, checked before it is kept.
    public static func backup(directory: URL, to destination: URL) throws {
        let path = try existingFile(in: directory)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let source = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? source.close() }
        if FileManager.default.fileExists(atPath: destination.path) {
            try FileManager.default.removeItem(at: destination)
        }
        let copy = try DatabaseQueue(path: destination.path)
        try source.backup(to: copy)
        // The copy stands alone: no WAL beside it.
        try copy.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = DELETE")
        }
        let check = try copy.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
        try copy.close()
        guard check == ["ok"] else {
            throw StorageError.damaged(path: destination.path, detail: check.joined(separator: "; "))
        }
    }
}
