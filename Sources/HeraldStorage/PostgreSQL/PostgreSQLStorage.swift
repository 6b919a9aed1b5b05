import Foundation
import HeraldSchema
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// The PostgreSQL backend, through postgres-nio: the same tables, statements and answers as the
/// SQLite file, on a server several Herald processes can share.
///
/// Each transaction leases one connection (``PostgreSQLConnections``) and waits for every
/// statement on the thread that runs it: an engine thread for work with hooks, else one of the
/// backend's own threads. Nothing blocks an event loop or Swift's shared executor.
///
/// Every transaction runs at `REPEATABLE READ`: one snapshot for its whole life, as SQLite's.
/// A write that updates or deletes a row another transaction changed since its snapshot fails
/// with a serialization failure instead of overwriting it (no lost update); such a write, and
/// one that meets a deadlock, runs again from the start, hooks included, up to
/// ``Configuration/attempts`` times, and nothing of an abandoned attempt remains. Two creates
/// racing for a unique value meet at the unique index: the second fails naming the property.
/// (`SERIALIZABLE` would also refuse write skew, at the price of failing unrelated inserts
/// that share an index page; Herald's writes do not need it.)
public final class PostgreSQLStorage: StorageBackend {
    /// The backend's settings.
    public struct Configuration: Sendable {
        /// The most connections this process opens.
        public var connections = 16
        /// How many times a write that conflicts with concurrent writes runs before it fails.
        public var attempts = 10
        /// Threads that run transactions for callers on Swift's executor.
        public var threads = 8

        public init() {}
    }

    let connections: PostgreSQLConnections
    let threads: NIOThreadPool
    let layout = Layout()
    let logger: Logger
    public let configuration: Configuration
    public let location: PostgreSQLLocation

    /// Prepares the connections to `location`; nothing connects until the first transaction
    /// (``migrate(to:allowDestructive:)`` at start-up, where a wrong address or password stops
    /// start-up with PostgreSQL's own words).
    public init(
        location: PostgreSQLLocation,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "herald.storage")
    ) throws {
        self.location = location
        self.configuration = configuration
        self.logger = logger
        self.connections = try PostgreSQLConnections(
            location: location,
            maximum: configuration.connections,
            logger: logger
        )
        self.threads = NIOThreadPool(numberOfThreads: max(1, configuration.threads))
        threads.start()
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        try await threads.runIfActive { try self.readBlocking(body) }
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
        try await threads.runIfActive { try self.writeBlocking(body) }
    }

    public func writeBlocking<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        try transaction(readOnly: false) { connection in
            let tx = try SQLTransaction(connection: connection, layout: layout)
            let value = try body(tx)
            connection.changedTypes = Set(tx.changes.map(\.type))
            return value
        }
    }

    public func readBlocking<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        try transaction(readOnly: true) { connection in
            try body(try SQLTransaction(connection: connection, layout: layout))
        }
    }

    public func close() throws {
        connections.close()
        try threads.syncShutdownGracefully()
    }

    /// Runs `body` in one transaction on a leased connection: commits, or rolls back on any
    /// error; runs it again on a conflict; then runs the commit actions.
    /// How a transaction sees the others' commits.
    enum Isolation: String {
        /// One snapshot from the first statement on: reads and writes.
        case repeatableRead = "REPEATABLE READ"
        /// Each statement sees what committed before it: a migration, which first waits for the
        /// migration lock and must then see the tables another node's migration left.
        case readCommitted = "READ COMMITTED"
    }

    func transaction<T>(
        readOnly: Bool,
        isolation: Isolation = .repeatableRead,
        _ body: (PostgreSQLConnection) throws -> T
    ) throws -> T {
        var attempt = 1
        while true {
            let leased = try connections.lease()
            let connection = PostgreSQLConnection(leased, logger: logger)
            var reusable = true
            do {
                defer { connections.release(leased, reusable: reusable) }
                do {
                    // Sent with the transaction's first statement: one round trip for both.
                    connection.send("BEGIN ISOLATION LEVEL \(isolation.rawValue)\(readOnly ? " READ ONLY" : "")")
                    let value = try body(connection)
                    // A statement failed and the body went on: PostgreSQL has aborted the
                    // transaction, and a COMMIT would quietly roll it back.
                    if let failure = connection.failure { throw failure }
                    connection.queueNotices()
                    try connection.commit()
                    for action in connection.commitActions { action() }
                    return value
                } catch {
                    reusable = rollBack(leased, after: connection.failure ?? error)
                    // A conflict runs the work again, whatever the body made of it.
                    if let failure = connection.failure, PostgreSQLErrors.isConflict(failure) { throw failure }
                    throw error
                }
            } catch  where PostgreSQLErrors.isConflict(error) {
                guard attempt < configuration.attempts else {
                    logger.warning("a write conflicted \(attempt) times; abandoned")
                    throw StorageError.conflict(attempts: attempt)
                }
                attempt += 1
                // A random pause that doubles with each attempt (1 to 2, 4, ... 256 ms) lets the
                // other writers finish first instead of meeting them again.
                usleep(UInt32.random(in: 1_000...(1_000 << UInt32(min(attempt, 8)))))
            } catch {
                throw PostgreSQLErrors.translate(error, schema: layout.newest)
            }
        }
    }

    /// Ends a failed transaction; whether the connection can serve the next one.
    private func rollBack(_ connection: PostgresConnection, after error: any Error) -> Bool {
        if PostgreSQLErrors.isConnectionLost(error) || connection.isClosed { return false }
        do {
            _ = try connection.query("ROLLBACK", logger: logger).wait()
            return true
        } catch {
            return false
        }
    }
}
