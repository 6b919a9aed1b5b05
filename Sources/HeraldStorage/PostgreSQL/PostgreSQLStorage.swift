import Foundation
import HeraldSchema
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

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
        /// The types whose changes the other processes hear of (``CommitNotice/changed(types:)``),
        /// for the caches they keep; nil: every type.
        public var announcedTypes: Set<String>?

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
        try transaction(readOnly: false, checksGeneration: true) { connection in
            let tx = try SQLTransaction(connection: connection, layout: layout)
            let value = try body(tx)
            connection.changedTypes = Set(tx.changes.map(\.type)).filter(announces)
            return value
        }
    }

    public func readBlocking<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
        try transaction(readOnly: true, checksGeneration: true) { connection in
            try body(try SQLTransaction(connection: connection, layout: layout))
        }
    }

    /// The read alone, outside a transaction: no `BEGIN`, no generation check, no `COMMIT`.
    public func events(after id: Int64, through last: Int64, limit: Int) async throws -> [PersistedEvent] {
        try await threads.runIfActive { try self.eventsBlocking(after: id, through: last, limit: limit) }
    }

    public func eventsBlocking(after id: Int64, through last: Int64, limit: Int) throws -> [PersistedEvent] {
        try transaction(readOnly: true, alone: true) { connection in
            try SQLTransaction.events(after: id, through: last, limit: limit, on: connection)
        }
    }

    /// Whether the other processes hear of changes to objects of `type`.
    private func announces(_ type: String) -> Bool {
        configuration.announcedTypes?.contains(type) ?? true
    }

    public func close() throws {
        connections.close()
        try threads.syncShutdownGracefully()
    }

    /// How a transaction sees the others' commits.
    enum Isolation: String {
        /// One snapshot from the first statement on: reads and writes.
        case repeatableRead = "REPEATABLE READ"
        /// Each statement sees what committed before it: a migration, which first waits for the
        /// migration lock and must then see the tables another node's migration left.
        case readCommitted = "READ COMMITTED"
    }

    /// This process's recent commits with events, whose notices it skips.
    let recentAppends = RecentAppends()

    /// The schema generation the database was last seen at: transactions expect it (and check
    /// it with their first statement) instead of reading it first. Nil: read it.
    let knownGeneration = Mutex<Int64?>(nil)

    /// Runs `body` in one transaction on a leased connection: commits, or rolls back on any
    /// error; runs it again on a conflict; then runs the commit actions.
    ///
    /// With `alone`, `body` runs one statement, which PostgreSQL runs as a transaction of its own.
    /// With `checksGeneration`, the transaction's schema generation is the one last seen, and
    /// its first statement checks that its snapshot has it; when not, the work runs again with
    /// the generation read, which is then the one last seen.
    func transaction<T>(
        readOnly: Bool,
        isolation: Isolation = .repeatableRead,
        checksGeneration: Bool = false,
        alone: Bool = false,
        _ body: (PostgreSQLConnection) throws -> T
    ) throws -> T {
        var attempt = 1
        while true {
            let leased = try connections.lease()
            let expected = checksGeneration ? knownGeneration.withLock { $0 } : nil
            let connection = PostgreSQLConnection(
                leased,
                isolation: isolation,
                readOnly: readOnly,
                expectedGeneration: expected,
                alone: alone,
                recentAppends: recentAppends,
                logger: logger
            )
            var reusable = true
            do {
                defer { connections.release(leased, reusable: reusable) }
                do {
                    let value = try body(connection)
                    // A statement failed and the body went on: PostgreSQL has aborted the
                    // transaction, and a COMMIT would quietly roll it back.
                    if let failure = connection.failure { throw failure }
                    try connection.commit()
                    if checksGeneration, expected == nil, let read = connection.generationRead {
                        knownGeneration.withLock { $0 = read }
                    }
                    for action in connection.commitActions { action() }
                    return value
                } catch {
                    reusable = rollBack(connection, after: connection.failure ?? error)
                    // A conflict runs the work again, whatever the body made of it.
                    if let failure = connection.failure, Self.runsAgain(failure) { throw failure }
                    throw error
                }
            } catch  where PostgreSQLErrors.isGenerationChange(error) && attempt < configuration.attempts {
                // A migration committed since: read the generation from now on until a
                // transaction has seen the new one.
                knownGeneration.withLock { $0 = nil }
                attempt += 1
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

    /// Whether a failure runs the work again: a conflict, or a schema generation that changed.
    private static func runsAgain(_ failure: any Error) -> Bool {
        PostgreSQLErrors.isConflict(failure) || PostgreSQLErrors.isGenerationChange(failure)
    }

    /// Ends a failed transaction; whether the connection can serve the next one.
    private func rollBack(_ transaction: PostgreSQLConnection, after error: any Error) -> Bool {
        let connection = transaction.connection
        if PostgreSQLErrors.isConnectionLost(error) || connection.isClosed { return false }
        // Nothing was sent, or only a statement that was its own transaction.
        guard transaction.hasBegun else { return true }
        do {
            _ = try connection.query("ROLLBACK", logger: logger).wait()
            return true
        } catch {
            return false
        }
    }
}
