import Foundation
import HeraldStorage

/// Which backend the suite runs on: SQLite files by default; PostgreSQL when
/// `HERALD_TEST_POSTGRESQL` names a (throwaway) server, as `scripts/test` sets it for its
/// second run. Every `TestDirectory` then gets a database of its own on that server.
enum TestDatabase {
    /// The server's maintenance database URL (`postgresql://postgres@127.0.0.1:PORT/postgres`).
    static let server: String? = ProcessInfo.processInfo.environment["HERALD_TEST_POSTGRESQL"].flatMap {
        $0.isEmpty ? nil : $0
    }

    static var isPostgreSQL: Bool { server != nil }
    static var isSQLite: Bool { server == nil }

    /// A new, empty database on the server, as a URL for `--database`; nil on SQLite.
    static func create() throws -> String? {
        guard let server else { return nil }
        let name = "herald_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased())"
        try psql(server, "CREATE DATABASE \(name)")
        guard let slash = server.lastIndex(of: "/") else { throw TestFailure("no database in \(server)") }
        return server[..<slash] + "/" + name
    }

    /// Runs one statement outside a transaction (as `CREATE DATABASE` must run).
    static func psql(_ url: String, _ sql: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        process.arguments = ["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw TestFailure("psql failed: \(message)")
        }
    }

    /// The storage of `directory`, on the suite's backend.
    static func storage(_ directory: TestDirectory) throws -> any StorageBackend {
        if let database = directory.database {
            return try PostgreSQLStorage(location: try PostgreSQLLocation(url: database))
        }
        return try SQLiteStorage(directory: directory.data)
    }

    /// Every event in `directory`'s event log, oldest first, read through a storage of its own
    /// (a server may be running on it).
    static func loggedEvents(_ directory: TestDirectory) async throws -> [PersistedEvent] {
        let storage = try storage(directory)
        defer { try? storage.close() }
        return try await storage.read { tx in try tx.events(after: 0, through: .max, limit: .max) }
    }
}
