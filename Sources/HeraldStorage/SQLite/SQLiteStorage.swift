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

    /// Opens (or creates) `herald.sqlite` in `directory`.
    public init(directory: URL, logger: Logger = Logger(label: "herald.storage")) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.label = "herald"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        self.pool = try DatabasePool(
            path: directory.appendingPathComponent("herald.sqlite").path,
            configuration: configuration
        )
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
        return try await pool.read { db in try body(SQLiteTransaction(db: db, layout: layout)) }
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        let layout = self.layout
        return try await pool.write { db in try body(SQLiteTransaction(db: db, layout: layout)) }
    }

    public func writeBlocking<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        try pool.write { db in try body(SQLiteTransaction(db: db, layout: layout)) }
    }

    public func readBlocking<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        try pool.read { db in try body(SQLiteTransaction(db: db, layout: layout)) }
    }

    public func close() throws {
        try pool.close()
    }
}

/// Table and column names for a schema, shared by the migrator and transactions.
final class Layout: @unchecked Sendable {
    private let lock = NSLock()
    private var _schema = Schema(types: [:], relationships: [])

    var schema: Schema {
        lock.withLock { _schema }
    }

    func set(_ schema: Schema) {
        lock.withLock { _schema = schema }
    }

    static func table(_ type: String) -> String { type.quotedDatabaseIdentifier }

    static func linkTableName(_ relationship: Relationship) -> String {
        "_rel_\(relationship.sourceType)_\(relationship.name)"
    }

    static func linkTable(_ relationship: Relationship) -> String {
        linkTableName(relationship).quotedDatabaseIdentifier
    }

    /// The SQLite column type for a property type (tables are STRICT).
    static func columnType(_ type: PropertyType) -> String {
        switch type {
        case .integer, .boolean: "INTEGER"
        case .number: "REAL"
        case .string, .date, .enumeration, .json, .password: "TEXT"
        }
    }
}
