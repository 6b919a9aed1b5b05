import Logging
import NIOCore
import PostgresNIO

/// ``SQLTransaction``'s statements on one leased PostgreSQL connection, each waited for on the
/// calling (dedicated) thread.
///
/// PostgreSQL aborts a transaction at its first failed statement, so the first failure is kept:
/// the transaction is then rolled back (or run again) whatever the body made of the error.
final class PostgreSQLConnection: SQLConnection {
    let connection: PostgresConnection
    let logger: Logger
    var dialect: SQLDialect { .postgresql }
    /// What runs once the transaction has committed.
    private(set) var commitActions: [@Sendable () -> Void] = []
    /// The first statement that failed in this transaction.
    private(set) var failure: (any Error)?
    private var holdsEventLock = false

    init(_ connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    /// The advisory lock that orders the transactions appending events (its key spells "herald
    /// events" in the low bytes, clear of any key an application would choose by accident).
    static let eventLogLock: Int64 = 0x4845_5241_4C44_4556
    /// The advisory lock that lets one node migrate at a time.
    static let migrationLock: Int64 = 0x4845_5241_4C44_4D49

    func rows(_ sql: String, _ arguments: SQLArguments) throws -> [SQLRow] {
        try run(sql, arguments).rows.map(Self.row)
    }

    @discardableResult
    func execute(_ sql: String, _ arguments: SQLArguments) throws -> Int {
        try run(sql, arguments).metadata.rows ?? 0
    }

    func afterCommit(_ action: @escaping @Sendable () -> Void) {
        commitActions.append(action)
    }

    /// Appends to the event log under the log's lock, held until commit: the ids a sequence
    /// hands out follow the order of the lock, and the lock is released only once the commit is
    /// visible, so a reader never sees an id before a smaller one that will still commit.
    ///
    /// The lock and the insert are sent without waiting: they go with the commit, so the lock
    /// is held for that one round trip, and the ids are read from the insert's answer once the
    /// commit has answered (``commit()``).
    func appendEvents(_ sql: String, _ arguments: SQLArguments) throws -> AppendedEventIDs {
        if let failure { throw failure }
        if !holdsEventLock {
            send("SELECT pg_advisory_xact_lock(\(Self.eventLogLock))")
            holdsEventLock = true
        }
        let ids = AppendedEventIDs()
        if let answer = send(sql, arguments) { appended.append((answer, ids)) }
        return ids
    }

    /// The appends of this transaction, each with the ids its answer resolves.
    private var appended: [(answer: EventLoopFuture<PostgresQueryResult>, ids: AppendedEventIDs)] = []

    /// The types of the objects this transaction changed (set before the commit).
    var changedTypes: Set<String> = []
    /// The login sessions this transaction ended.
    private var endedSessions: [String] = []

    func didEndSession(key: String) {
        endedSessions.append(key)
    }

    /// The channel on which commits tell every process what they did.
    static let noticeChannel = "herald"

    /// Queues the notices of this transaction (``CommitNotice``): PostgreSQL sends them at the
    /// commit, and never if the transaction rolls back.
    func queueNotices() {
        var payloads: [String] = endedSessions.map { "s:" + $0 }
        // The newest id the log gave this transaction: the identity sequence's value in this
        // session, as the insert (sent, not yet answered) leaves it.
        if !appended.isEmpty {
            send(
                "SELECT pg_notify('\(Self.noticeChannel)', 'e:' || currval(pg_get_serial_sequence('_herald_events', 'id')))"
            )
        }
        let types = changedTypes.filter { !$0.isEmpty }.sorted().joined(separator: ",")
        // NOTIFY's payload ends below 8,000 bytes; a longer list means "everything changed".
        if !types.isEmpty { payloads.append("t:" + (types.utf8.count < 7000 ? types : "*")) }
        for payload in payloads {
            var arguments = SQLArguments(.postgresql)
            // Sent with the commit that follows.
            send("SELECT pg_notify('\(Self.noticeChannel)', \(arguments.add(payload)))", arguments)
        }
    }

    /// The notice a payload of ``queueNotices()`` stands for.
    static func notice(_ payload: String) -> CommitNotice? {
        let body = String(payload.dropFirst(2))
        switch payload.prefix(2) {
        case "e:": return Int64(body).map { .events(through: $0) }
        case "s:": return .sessionEnded(key: body)
        case "t:": return .changed(types: body == "*" ? [] : Set(body.split(separator: ",").map(String.init)))
        default: return nil
        }
    }

    /// Statements sent without waiting for their answer (``send(_:_:)``), oldest first.
    private var unanswered: [EventLoopFuture<PostgresQueryResult>] = []

    /// Sends a statement whose answer nothing needs without waiting for it: PostgreSQL answers
    /// in order, so the next statement waited for (or the commit) also waits for it, and its
    /// failure, if any, fails the transaction there. Saves a round trip each.
    @discardableResult
    func send(
        _ sql: String,
        _ arguments: SQLArguments = SQLArguments(.postgresql)
    ) -> EventLoopFuture<PostgresQueryResult>? {
        guard failure == nil else { return nil }
        let answer = connection.query(PostgresQuery(unsafeSQL: sql, binds: Self.binds(arguments)), logger: logger)
        unanswered.append(answer)
        return answer
    }

    /// Commits: sends `COMMIT` after whatever is still unanswered and waits for all of it. A
    /// statement that failed meanwhile aborted the transaction, whose `COMMIT` PostgreSQL then
    /// answers as a `ROLLBACK`: that is a failure, not a commit.
    func commit() throws {
        let answer = try run("COMMIT", SQLArguments(.postgresql))
        guard answer.metadata.command == "COMMIT" else {
            throw failure ?? StorageError.database(code: "PostgreSQL", message: "the commit was rolled back")
        }
        // Answered before the commit: these only hand over what they hold.
        for (answer, ids) in appended {
            let rows = try answer.wait().rows
            ids.resolve(rows.compactMap { $0.first.map(Self.value)?.integerValue }.sorted())
        }
    }

    private func run(_ sql: String, _ arguments: SQLArguments) throws -> PostgresQueryResult {
        if let failure { throw failure }
        let answer = connection.query(PostgresQuery(unsafeSQL: sql, binds: Self.binds(arguments)), logger: logger)
        do {
            for earlier in unanswered { _ = try earlier.wait() }
            unanswered = []
            return try answer.wait()
        } catch {
            failure = error
            unanswered = []
            // Every answer still owed is awaited, so none outlives the transaction.
            _ = try? answer.wait()
            throw error
        }
    }

    private static func binds(_ arguments: SQLArguments) -> PostgresBindings {
        var binds = PostgresBindings(capacity: arguments.values.count)
        for value in arguments.values {
            switch value {
            case .null: binds.appendNull()
            case .integer(let i): binds.append(i)
            case .real(let d): binds.append(d)
            case .text(let s): binds.append(s)
            }
        }
        return binds
    }

    static func row(_ row: PostgresRow) -> SQLRow {
        var columns: [String] = []
        var values: [SQLArgument] = []
        for cell in row {
            columns.append(cell.columnName)
            values.append(value(cell))
        }
        return SQLRow(columns: columns, values: values)
    }

    static func value(_ cell: PostgresCell) -> SQLArgument {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return (try? cell.decode(Int64.self)).map(SQLArgument.integer) ?? .null
        case .float4, .float8: return (try? cell.decode(Double.self)).map(SQLArgument.real) ?? .null
        case .bool: return (try? cell.decode(Bool.self)).map { .integer($0 ? 1 : 0) } ?? .null
        default: return (try? cell.decode(String.self)).map(SQLArgument.text) ?? .null
        }
    }
}
