import Logging
import NIOCore
import PostgresNIO

/// ``SQLTransaction``'s statements on one leased PostgreSQL connection, each waited for on the
/// calling (dedicated) thread.
///
/// Nothing is sent until the first statement, which goes with the `BEGIN` and the check of the
/// schema generation the transaction expects: one round trip for the three. Statements whose
/// answer nothing needs (writes, the event append, the commit's notices) are sent without
/// waiting and answered in order before the next one waited for. A transaction that only
/// appends events sends its append alone, which PostgreSQL commits as it runs.
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
    /// The statement that opens the transaction, sent with its first statement.
    private let begin: String
    private let isReadOnly: Bool
    /// The schema generation the transaction takes as its own, checked with its first
    /// statement; nil: read it.
    private let expectedGeneration: Int64?
    /// Whether the `BEGIN` was sent.
    private(set) var hasBegun = false
    /// Where the newest id of each append is noted as its answer arrives.
    private let recentAppends: RecentAppends?
    /// Whether each statement runs alone, as a transaction of its own: a single read, or a
    /// commit that sends one append and nothing else.
    private var isAlone: Bool

    init(
        _ connection: PostgresConnection,
        isolation: PostgreSQLStorage.Isolation,
        readOnly: Bool,
        expectedGeneration: Int64?,
        alone: Bool = false,
        recentAppends: RecentAppends? = nil,
        logger: Logger
    ) {
        self.isAlone = alone
        self.recentAppends = recentAppends
        self.connection = connection
        self.begin = "BEGIN ISOLATION LEVEL \(isolation.rawValue)\(readOnly ? " READ ONLY" : "")"
        self.isReadOnly = readOnly
        self.expectedGeneration = expectedGeneration
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

    func write(_ sql: String, _ arguments: SQLArguments) throws {
        if let failure { throw failure }
        send(sql, arguments)
    }

    func writeReturning(_ sql: String, _ arguments: SQLArguments) throws -> PendingRows {
        if let failure { throw failure }
        let answer = send(sql, arguments)
        return PendingRows(
            read: { try self.wait(for: answer).rows.map(Self.row) },
            committed: { try? answer.wait().rows.map(Self.row) }
        )
    }

    /// The generation this transaction read (when it expected none).
    private(set) var generationRead: Int64?

    /// The expected generation, whose check goes with the first statement; else the one read.
    func schemaGeneration() throws -> Int64 {
        if let expectedGeneration { return expectedGeneration }
        let generation = try SQLTransaction.generation(self)
        generationRead = generation
        return generation
    }

    func afterCommit(_ action: @escaping @Sendable () -> Void) {
        commitActions.append(action)
    }

    /// Keeps the events for the commit, which sends their append (``appendStatement(_:)``) just
    /// before its `COMMIT`: the log's lock is held from the append to the commit only. The ids
    /// are read from the append's answer once the commit has answered (``commit()``).
    func appendEvents(_ events: ArraySlice<EventToLog>) throws -> AppendedEventIDs {
        if let failure { throw failure }
        let ids = AppendedEventIDs()
        appends.append((events, ids))
        return ids
    }

    /// The events this transaction appends at its commit, each batch with its ids.
    private var appends: [(events: ArraySlice<EventToLog>, ids: AppendedEventIDs)] = []

    /// One statement that appends `events` under the log's lock, held until commit, and queues
    /// the notice of its newest id. Ids come from a sequence in the order the lock is taken (the
    /// lock is the insert's one-time filter, evaluated before its first row), and the lock is
    /// released only once the commit is visible, so a reader never sees an id before a smaller
    /// one that will still commit.
    static func appendStatement(_ events: ArraySlice<EventToLog>) -> (sql: String, arguments: SQLArguments) {
        var arguments = SQLArguments(.postgresql)
        let rows = SQLTransaction.eventRows(events, &arguments)
        let sql = """
            WITH appended AS (INSERT INTO _herald_events (type, data, audience, created) \
            SELECT * FROM (VALUES \(rows)) AS appending \
            WHERE EXISTS (SELECT FROM (SELECT pg_advisory_xact_lock(\(eventLogLock))) AS held) RETURNING id), \
            noticed AS (SELECT pg_notify('\(noticeChannel)', 'e:' || MAX(id)) FROM appended) \
            SELECT id FROM appended, noticed ORDER BY id
            """
        return (sql, arguments)
    }

    /// The types of the objects this transaction changed (set before the commit).
    var changedTypes: Set<String> = []
    /// The login sessions this transaction ended.
    private var endedSessions: [String] = []

    func didEndSession(key: String) {
        endedSessions.append(key)
    }

    /// The channel on which commits tell every process what they did.
    static let noticeChannel = "herald"

    /// Queues the notices of this transaction other than its events' (``CommitNotice``):
    /// PostgreSQL sends them at the commit, and never if the transaction rolls back.
    private func queueNotices() {
        var payloads: [String] = endedSessions.map { "s:" + $0 }
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

    /// Opens the transaction before its first statement: `BEGIN`, then the check that the
    /// snapshot's schema generation is the expected one (a function the migration made; it
    /// fails the transaction with ``PostgreSQLErrors/generationChanged`` otherwise). Neither
    /// is waited for.
    private func beginIfNeeded() {
        guard !hasBegun, !isAlone else { return }
        hasBegun = true
        unanswered.append(connection.query(PostgresQuery(unsafeSQL: begin), logger: logger))
        if let expectedGeneration {
            var binds = PostgresBindings(capacity: 1)
            binds.append(expectedGeneration)
            unanswered.append(
                connection.query(
                    PostgresQuery(unsafeSQL: "SELECT _herald_expect_generation($1)", binds: binds),
                    logger: logger
                )
            )
        }
    }

    /// Sends a statement whose answer nothing needs without waiting for it: PostgreSQL answers
    /// in order, so the next statement waited for (or the commit) also waits for it, and its
    /// failure, if any, fails the transaction there. Saves a round trip each. Callers send
    /// nothing once a statement has failed (``failure``).
    @discardableResult
    private func send(
        _ sql: String,
        _ arguments: SQLArguments = SQLArguments(.postgresql)
    ) -> EventLoopFuture<PostgresQueryResult> {
        beginIfNeeded()
        let answer = connection.query(PostgresQuery(unsafeSQL: sql, binds: Self.binds(arguments)), logger: logger)
        unanswered.append(answer)
        return answer
    }

    /// Commits: sends the appends, the notices and `COMMIT` after whatever is still unanswered
    /// and waits for all of it. A statement that failed meanwhile aborted the transaction, whose
    /// `COMMIT` PostgreSQL then answers as a `ROLLBACK`: that is a failure, not a commit.
    ///
    /// A transaction that sent nothing commits without a round trip, or, when all it did was
    /// one append, with that append alone: PostgreSQL runs a statement outside a transaction as
    /// a transaction of its own, the lock and the notice included.
    func commit() throws {
        if let failure { throw failure }
        // Nothing sent yet and one append to send: it goes alone.
        if !hasBegun, appends.count == 1, endedSessions.isEmpty, !isReadOnly { isAlone = true }
        var answers: [(answer: EventLoopFuture<PostgresQueryResult>, ids: AppendedEventIDs)] = []
        for (events, ids) in appends {
            let (sql, arguments) = Self.appendStatement(events)
            answers.append((noted(send(sql, arguments)), ids))
        }
        queueNotices()
        do {
            if hasBegun {
                let answer = try run("COMMIT", SQLArguments(.postgresql))
                guard answer.metadata.command == "COMMIT" else {
                    throw failure ?? StorageError.database(code: "PostgreSQL", message: "the commit was rolled back")
                }
            } else if let alone = answers.last {
                _ = try wait(for: alone.answer)
            }
        } catch {
            // Its notice, if it committed after all, must not be skipped.
            for (answer, _) in answers {
                if let newest = try? Self.ids(answer.wait().rows).last { recentAppends?.forget(newest) }
            }
            throw error
        }
        // Answered by now: these only hand over what they hold.
        for (answer, ids) in answers { ids.resolve(Self.ids(try answer.wait().rows)) }
    }

    /// Notes the newest id of an append's answer as soon as it arrives (``RecentAppends``).
    private func noted(_ answer: EventLoopFuture<PostgresQueryResult>) -> EventLoopFuture<PostgresQueryResult> {
        if let recentAppends {
            answer.whenSuccess { result in
                if let newest = Self.ids(result.rows).last { recentAppends.note(newest) }
            }
        }
        return answer
    }

    private static func ids(_ rows: [PostgresRow]) -> [Int64] {
        rows.compactMap { $0.first.map(Self.value)?.integerValue }.sorted()
    }

    private func run(_ sql: String, _ arguments: SQLArguments) throws -> PostgresQueryResult {
        if let failure { throw failure }
        beginIfNeeded()
        let answer = connection.query(PostgresQuery(unsafeSQL: sql, binds: Self.binds(arguments)), logger: logger)
        unanswered.append(answer)
        return try wait(for: answer)
    }

    /// Waits for the answer of a statement sent, after those of every statement sent before it
    /// (PostgreSQL answers in order): the first that failed fails the transaction, and that
    /// failure is the one thrown, here and from then on.
    private func wait(for answer: EventLoopFuture<PostgresQueryResult>) throws -> PostgresQueryResult {
        if let failure { throw failure }
        do {
            while !unanswered.isEmpty {
                let earlier = unanswered.removeFirst()
                let result = try earlier.wait()
                if earlier === answer { return result }
            }
            // Answered before, while waiting for a later statement.
            return try answer.wait()
        } catch {
            failure = error
            // Every answer still owed is awaited, so none outlives the transaction.
            for owed in unanswered { _ = try? owed.wait() }
            unanswered = []
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
