import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// The backend's connections to PostgreSQL, leased one per transaction.
///
/// Transactions run on dedicated threads (engine threads, or the backend's own), never on an
/// event loop or Swift's shared executor, so a lease blocks its thread until a connection is
/// free, and each statement blocks it until PostgreSQL answers. Connections are opened on
/// demand, up to `maximum`, and a broken one is dropped and replaced by the next lease.
final class PostgreSQLConnections: @unchecked Sendable {
    let location: PostgreSQLLocation
    let maximum: Int
    /// How long a lease waits for a free connection before the transaction fails as unavailable.
    let leaseTimeout: TimeInterval
    private let configuration: PostgresConnection.Configuration
    private let eventLoops: any EventLoopGroup
    private let logger: Logger

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var idle: [PostgresConnection] = []
    private var open = 0
    private var nextID = 0
    private var isClosed = false

    init(location: PostgreSQLLocation, maximum: Int, leaseTimeout: TimeInterval = 30, logger: Logger) throws {
        self.location = location
        self.maximum = max(1, maximum)
        self.leaseTimeout = leaseTimeout
        self.configuration = try location.connectionConfiguration()
        self.eventLoops = MultiThreadedEventLoopGroup.singleton
        self.logger = logger
    }

    /// A storage dropped without ``close()`` (start-up failed) still closes its connections:
    /// postgres-nio requires every connection closed before it goes.
    deinit {
        for connection in idle { connection.close().whenComplete { _ in _ = connection } }
    }

    /// A connection for one transaction; give it back with ``release(_:reusable:)``.
    func lease() throws -> PostgresConnection {
        let deadline = Date(timeIntervalSinceNow: leaseTimeout)
        condition.lock()
        while true {
            if isClosed {
                condition.unlock()
                throw StorageError.unavailable(detail: "the database connections are closed")
            }
            if let connection = idle.popLast() {
                if connection.isClosed {
                    open -= 1
                    continue
                }
                condition.unlock()
                return connection
            }
            if open < maximum {
                open += 1
                nextID += 1
                let id = nextID
                condition.unlock()
                do {
                    return try connect(id: id)
                } catch {
                    condition.lock()
                    open -= 1
                    condition.signal()
                    condition.unlock()
                    throw error
                }
            }
            if !condition.wait(until: deadline) {
                condition.unlock()
                throw StorageError.unavailable(
                    detail: "all \(maximum) connections stayed busy for \(Int(leaseTimeout)) s (database.connections)"
                )
            }
        }
    }

    /// Takes a connection back: kept for the next lease when `reusable`, else closed.
    func release(_ connection: PostgresConnection, reusable: Bool) {
        condition.lock()
        let keep = reusable && !isClosed && !connection.isClosed
        if keep {
            idle.append(connection)
        } else {
            open -= 1
        }
        condition.signal()
        condition.unlock()
        // The connection must outlive its closing (postgres-nio checks it is closed when it goes).
        if !keep { connection.close().whenComplete { _ in _ = connection } }
    }

    /// Closes every idle connection; leases fail from now on.
    func close() {
        condition.lock()
        isClosed = true
        let connections = idle
        idle = []
        open -= connections.count
        condition.broadcast()
        condition.unlock()
        for connection in connections { try? connection.close().wait() }
    }

    private func connect(id: Int) throws -> PostgresConnection {
        do {
            return try PostgresConnection.connect(
                on: eventLoops.next(),
                configuration: configuration,
                id: id,
                logger: logger
            ).wait()
        } catch {
            throw StorageError.unavailable(detail: "cannot connect to \(location): \(PostgreSQLErrors.summary(error))")
        }
    }
}
