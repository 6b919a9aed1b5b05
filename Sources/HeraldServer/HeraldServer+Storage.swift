import Foundation
import HeraldApplication
import HeraldHTTP
import HeraldSchema
import HeraldStorage
import Logging

extension HeraldServer {
    /// The backend `database` names: the SQLite file in the data folder, or PostgreSQL.
    static func openStorage(_ configuration: HeraldConfiguration, logger: Logger) throws -> any StorageBackend {
        let storageLogger = Logger(label: "herald.storage", level: configuration.logLevel)
        switch try configuration.backend() {
        case .sqlite:
            return try SQLiteStorage(
                directory: URL(fileURLWithPath: configuration.dataDirectory),
                maxSize: configuration.maxDatabaseSize,
                logger: storageLogger
            )
        case .postgresql(let location):
            // The location's description hides the password.
            logger.info("database", metadata: ["backend": "postgresql", "at": "\(location)"])
            var settings = PostgreSQLStorage.Configuration()
            settings.connections = configuration.databaseConnections
            settings.attempts = configuration.databaseWriteAttempts
            settings.announcedTypes = WorkRunner.typesCachesFollow
            return try PostgreSQLStorage(location: location, configuration: settings, logger: storageLogger)
        }
    }

    /// The key that signs tokens: the configured one; else, on a database several nodes share,
    /// one kept in the database (the first node makes it), so a token from one node is good on
    /// every node; else one kept in the data folder.
    static func tokenSecret(_ configuration: HeraldConfiguration, storage: any StorageBackend) async throws -> String {
        if let configured = configuration.jwtSecret, !configured.isEmpty { return configured }
        guard storage is any SharedStorageBackend else {
            return try Tokens.secret(configured: nil, dataDirectory: URL(fileURLWithPath: configuration.dataDirectory))
        }
        let fresh = EntityID.randomHex(bytes: 32)
        return try await storage.write { tx in
            if let kept = try tx.metadata("jwt.secret") { return kept }
            // Two nodes making one at once: the second's write conflicts, runs again, finds it.
            try tx.setMetadata("jwt.secret", fresh)
            return fresh
        }
    }

    /// Loads `initial-data.json` once per database. Nodes of a cluster starting together race
    /// for it: the loser's inserts meet the winner's at the unique indexes and primary keys, and its second try
    /// finds the data loaded and loads nothing.
    static func loadInitialData(_ model: DataModel, into storage: any StorageBackend) async throws -> Int {
        do {
            return try await storage.write { tx in try model.loadInitialData(in: tx) }
        } catch  where storage is any SharedStorageBackend {
            // Unique values and explicit ids alike; a real error fails the same way again.
            return try await storage.write { tx in try model.loadInitialData(in: tx) }
        }
    }
}
