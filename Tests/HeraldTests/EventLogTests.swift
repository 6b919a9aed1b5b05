import Foundation
import HeraldEvents
import HeraldSchema
import HeraldServer
import HeraldStorage
import NIOHTTP1
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The event log is the source of truth: rows written in the raising transaction, ids in commit
/// order, replay from memory then from the log, resync after expiry across a restart, and no
/// acknowledged write or delivered event lost to SIGKILL.
@Suite struct EventLogTests {
    static let root = EventSourceTests.root
    static let files: [String: String] = EventSourceTests.files.merging([
        "Note.json": #"{"properties": {"text": {"type": "string", "unique": true}}}"#,
        "Note/afterCreate.js": "{ $.broadcastEvent('note', $.this.text); }",
        "global/raiseThenFail.js": "{ $.broadcastEvent('doomed', 'never'); throw new Error('rolled back'); }",
        "global/count.js": "{ $.broadcastEvent('count', String($.arguments.n)); }",
        "global/many.js": """
        { for (let n = 0; n < $.arguments.n; n++) { $.broadcastEvent('many', String(n)); } }
        """,
    ]) { $1 }

    func data(_ text: String) -> [String] {
        text.split(separator: "\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
    }

    /// The rows of the event log that are events for streams (not the change records live
    /// queries read), read from the database.
    static func logRows(_ directory: TestDirectory) async throws -> [(id: Int64, type: String, data: String)] {
        try await TestDatabase.loggedEvents(directory).filter { $0.type != "change" }.map { ($0.id, $0.type, $0.data) }
    }

    @Test func aRollbackLeavesNoRowAndNoDelivery() async throws {
        let directory = try TestDirectory(files: Self.files)
        let server = try await TestServer.start(directory)
        let stream = try await EventStream(server, headers: Self.root)
        #expect(try await stream.waitFor("retry:"))
        #expect(try await server.request(.POST, "/structr/rest/raiseThenFail").status == 422)
        #expect(try await server.request(.POST, "/structr/rest/count", body: #"{"n": 1}"#).status == 200)
        #expect(try await stream.waitFor("event: count"))
        #expect(!stream.text.contains("doomed"))
        stream.close()
        try await server.stop()
        #expect(try await Self.logRows(directory).map(\.type) == ["count"])
    }

    @Test func idsFollowCommitOrderUnderConcurrentWriters() async throws {
        let directory = try TestDirectory(files: Self.files)
        let server = try await TestServer.start(directory) { $0.scriptEngines = 2 }
        let stream = try await EventStream(server, headers: Self.root)
        #expect(try await stream.waitFor("retry:"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    for n in 0..<25 {
                        let body = #"{"n": \#(writer * 100 + n)}"#
                        _ = try await server.request(.POST, "/structr/rest/count", body: body)
                        _ = try await server.request(
                            .POST,
                            "/structr/rest/Note",
                            body: #"{"text": "w\#(writer)-\#(n)"}"#
                        )
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await eventually { eventIDs(stream.text).count == 200 })
        let delivered = eventIDs(stream.text)
        // Delivered in commit order: strictly increasing, each once.
        #expect(delivered == delivered.sorted())
        #expect(Set(delivered).count == delivered.count)
        stream.close()
        try await server.stop()
        // Exactly the log's rows, in the log's order.
        #expect(try await Self.logRows(directory).map { UInt64($0.id) } == delivered)
    }

    /// A commit's entries that reach the hub past ids it has not seen (another thread's commit
    /// still on its way, an id a rollback took) wait for the log's entries in between: the hub
    /// gets every committed id once, in order, whichever thread arrives first.
    /// One transaction's events are appended together (in statements of at most a thousand):
    /// every one is logged and delivered, in the order raised, with consecutive ids.
    @Test func manyEventsOfOneTransactionKeepTheirOrderAndGetConsecutiveIds() async throws {
        let directory = try TestDirectory(files: Self.files)
        let server = try await TestServer.start(directory)
        let stream = try await EventStream(server, headers: Self.root)
        #expect(try await stream.waitFor("retry:"))
        #expect(try await server.request(.POST, "/structr/rest/many", body: #"{"n": 2500}"#).status == 200)
        #expect(try await eventually { data(stream.text).count == 2500 })
        stream.close()
        #expect(data(stream.text) == (0..<2500).map(String.init))
        let ids = eventIDs(stream.text)
        #expect(ids.count == 2500 && zip(ids, ids.dropFirst()).allSatisfy { $1 == $0 + 1 })
        try await server.stop()
        let rows = try await Self.logRows(directory)
        #expect(rows.map(\.data) == (0..<2500).map(String.init))
        #expect(rows.map { UInt64($0.id) } == ids)
    }

    @Test func entriesPastAGapAreDeliveredAfterTheLogFillsIt() async throws {
        let harness = try await RuntimeHarness(files: [:])
        defer { Task { try? await harness.close() } }
        let delivered = Mutex<[UInt64]>([])
        harness.hub.onPublished { entries in delivered.withLock { $0 += entries.map(\.event.id) } }
        // Three commits; the hub hears of none of them yet.
        var entries: [EventHub.Entry] = []
        for n in 0..<3 {
            if n == 2 {
                // A rollback: on PostgreSQL the id it took is never used; SQLite hands it out again.
                await #expect(throws: DataError.self) {
                    try await harness.storage.write { tx in
                        _ = try EventLog.append([("n", "doomed", .channel("c"))], in: tx)
                        throw DataError.invalidInput("rolled back")
                    }
                }
            }
            let appended = try await harness.storage.write { tx in
                try EventLog.append([("n", "\(n)", .channel("c"))], in: tx)
            }
            entries += try #require(appended.entries)
        }
        let follower = LogFollower(hub: harness.hub, storage: harness.storage)
        follower.deliver([entries[2]])
        follower.deliver([entries[0]])
        follower.deliver([entries[1]])
        #expect(delivered.withLock { $0 } == entries.map(\.event.id))
        #expect(harness.hub.newestID == entries[2].event.id)
    }

    @Test func replayBeyondTheWindowComesFromTheLog() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files)) { $0.eventWindowCount = 3 }
        defer { Task { try? await server.stop() } }
        let stream = try await EventStream(server, headers: Self.root)
        for n in 0..<12 {
            #expect(try await server.request(.POST, "/structr/rest/count", body: #"{"n": \#(n)}"#).status == 200)
        }
        #expect(try await eventually { eventIDs(stream.text).count == 12 })
        let seen = eventIDs(stream.text)
        stream.close()
        let late = try await EventStream(server, headers: Self.root.merging(["Last-Event-ID": String(seen[1])]) { $1 })
        defer { late.close() }
        #expect(try await eventually { eventIDs(late.text).count == 10 })
        #expect(eventIDs(late.text) == Array(seen[2...]))
        #expect(data(late.text) == (2..<12).map(String.init))
        #expect(!late.text.contains("resync"))
    }

    @Test func aRestartAfterTheHistoryExpiredAnswersResync() async throws {
        let directory = try TestDirectory(files: Self.files)
        let configure: (inout HeraldConfiguration) -> Void = { $0.eventHistoryAge = 1 }
        let first = try await TestServer.start(directory, configure: configure)
        let stream = try await EventStream(first, headers: Self.root)
        #expect(try await first.request(.POST, "/structr/rest/count", body: #"{"n": 1}"#).status == 200)
        #expect(try await eventually { eventIDs(stream.text).count == 1 })
        let seen = try #require(eventIDs(stream.text).first)
        stream.close()
        try await first.stop()
        try await Task.sleep(for: .milliseconds(2100))  // down for longer than historyAge
        let second = try await TestServer.start(directory, configure: configure)
        defer { Task { try? await second.stop() } }
        let late = try await EventStream(second, headers: Self.root.merging(["Last-Event-ID": String(seen - 1)]) { $1 })
        defer { late.close() }
        #expect(try await late.waitFor("event: resync"))
        #expect(late.text.contains(#""lastEventId":"\#(seen - 1)""#))
        // Ids keep increasing after the restart, though the log was pruned empty.
        #expect(try await second.request(.POST, "/structr/rest/count", body: #"{"n": 2}"#).status == 200)
        #expect(try await eventually { eventIDs(late.text).count == 1 })
        #expect(try #require(eventIDs(late.text).first) > seen)
    }

    @Test func pruningKeepsTheLogWithinHistoryCountInBoundedBatches() async throws {
        let directory = try TestDirectory(files: Self.files)
        let server = try await TestServer.start(directory) { $0.eventHistoryCount = 5 }
        for n in 0..<30 {
            #expect(try await server.request(.POST, "/structr/rest/count", body: #"{"n": \#(n)}"#).status == 200)
        }
        // The service prunes every second: the newest five stay (a dropped newest row would stay too).
        #expect(try await eventually { try await Self.logRows(directory).count == 5 })
        #expect(try await Self.logRows(directory).map(\.data) == (25..<30).map(String.init))
        try await server.stop()

        // One prune call deletes at most its batch, oldest first, and says how far it reached.
        let storage = try TestDatabase.storage(directory)
        defer { try? storage.close() }
        let before = try await Self.logRows(directory).map(\.id)
        let longAgo = Timestamp(millisecondsSince1970: 0)
        let reached = try await storage.write { tx in
            try tx.pruneEvents(keepingNewest: 1, olderThan: longAgo, atMost: 3)
        }
        #expect(reached == before[2])
        #expect(try await Self.logRows(directory).map(\.id) == Array(before[3...]))
    }

    @Test func aUniqueViolationTheDatabaseReportsIs422NamingTheProperty() async throws {
        let directory = try TestDirectory(files: Self.files)
        let server = try await TestServer.start(directory)
        try await server.stop()
        let storage = try TestDatabase.storage(directory)
        defer { try? storage.close() }
        _ = try await storage.migrate(to: try SchemaLoader(directory: directory.schema).load(), allowDestructive: false)
        // Two inserts that skip the model's check, as racing writers on another backend would.
        await #expect(
            throws: DataError.validation([
                FieldError(token: "already_taken", type: "Note", property: "text", detail: "the value is taken")
            ])
        ) {
            try await storage.write { tx in
                for _ in 0..<2 {
                    let now = JSONValue.string(Timestamp.now.iso8601)
                    let values: [String: JSONValue] = [
                        "text": "same", "createdDate": now, "lastModifiedDate": now,
                        "visibleToPublicUsers": false, "visibleToAuthenticatedUsers": false,
                    ]
                    try tx.insert(StoredEntity(type: "Note", id: EntityID.generate(), values: values))
                }
            }
        }
    }

    @Test func sigkillLosesNoAcknowledgedWriteAndNoCommittedEvent() async throws {
        let directory = try TestDirectory(files: Self.files)
        func start() throws -> ExecutableTests.Running {
            try ExecutableTests.Running(
                arguments: ["serve", "--schema", "schema", "--port", "0", "--data", "data"],
                environment: ["HERALD_SUPERUSER_PASSWORD": TestServer.superuserPassword, "HERALD_BCRYPT_COST": "4"],
                directory: directory.root,
                database: directory.database
            )
        }
        let first = try start()
        let port = try await first.port()
        let target = try TestServer.attach(directory, port: port)
        let stream = try await EventStream(target, headers: Self.root)
        #expect(try await stream.waitFor("retry:"))
        // A writer creates notes whose afterCreate broadcasts; the server is killed mid-stream.
        let created = Mutex<[String]>([])
        let writer = Task {
            for n in 0..<100_000 {
                guard
                    let answer = try? await target.request(.POST, "/structr/rest/Note", body: #"{"text": "n\#(n)"}"#),
                    answer.status == 201
                else { return }
                created.withLock { $0.append("n\(n)") }
            }
        }
        // Fifty acknowledged creates are enough to kill it mid-flow; a loaded machine (a build next
        // to the suite) makes a debug server slow.
        #expect(try await eventually(60) { created.withLock { $0.count } >= 50 })
        kill(first.process.processIdentifier, SIGKILL)
        _ = await writer.result
        _ = try await first.exitStatus()
        let lastSeen = eventIDs(stream.text).last ?? 0
        stream.close()

        let second = try start()
        let port2 = try await second.port()
        let restarted = try TestServer.attach(directory, port: port2)
        let acknowledged = created.withLock { $0 }
        let notes = try await restarted.get("/structr/rest/Note?_pageSize=10000")
        let stored = Set((notes.arrayValue ?? []).compactMap { $0["text"]?.stringValue })
        #expect(acknowledged.allSatisfy(stored.contains))
        // Every acknowledged note's event is in the log.
        let rows = try await Self.logRows(directory)
        let logged = Set(rows.filter { $0.type == "note" }.map(\.data))
        #expect(acknowledged.allSatisfy(logged.contains))
        // A client reconnecting with the last id it saw gets every committed event after it,
        // once and in order.
        let late = try await EventStream(
            restarted,
            headers: Self.root.merging(["Last-Event-ID": String(lastSeen)]) { $1 }
        )
        let expected = rows.filter { UInt64($0.id) > lastSeen }.map { UInt64($0.id) }
        #expect(try await eventually(10) { eventIDs(late.text).count >= expected.count })
        #expect(eventIDs(late.text) == expected)
        #expect(!late.text.contains("resync"))
        late.close()
        second.process.terminate()
        #expect(try await second.exitStatus() == 0)
    }
}
