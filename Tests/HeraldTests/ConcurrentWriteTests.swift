import Foundation
import HeraldSchema
import Synchronization
import Testing

/// Concurrent writers on either backend: unique values hold, no update is lost, and a write
/// that keeps conflicting is abandoned whole with a clear 503. On SQLite writes take turns; on
/// PostgreSQL they race and conflicts run the unit of work again.
@Suite struct ConcurrentWriteTests {
    static let files = [
        "Tag.json": #"{"properties": {"name": {"type": "string", "unique": true}}}"#,
        "Counter.json": #"{"properties": {"n": {"type": "integer", "default": 0}}}"#,
        // Reads the counter, then writes it one higher: the read-modify-write a lost update breaks.
        "global/bump.js": """
        {
            const counter = $.first($.find('Counter'));
            $.broadcastEvent('bumped', String(counter.n));
            counter.n = counter.n + 1;
            return counter.n;
        }
        """,
    ]

    @Test func concurrentCreatesOfOneUniqueValueGiveOne201AndNamed422s() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        let statuses = try await withThrowingTaskGroup(of: HTTPResult.self) { group in
            for _ in 0..<12 {
                group.addTask { try await server.request(.POST, "/structr/rest/Tag", body: #"{"name": "same"}"#) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.filter { $0.status == 201 }.count == 1)
        let refused = statuses.filter { $0.status != 201 }
        #expect(refused.count == 11)
        for answer in refused {
            #expect(answer.status == 422, "\(answer.text)")
            #expect(answer.json["errors"]?.arrayValue?.first?["property"] == "name", "\(answer.text)")
            #expect(answer.json["errors"]?.arrayValue?.first?["token"] == "already_taken", "\(answer.text)")
        }
        #expect(try await server.get("/structr/rest/Tag").arrayValue?.count == 1)
    }

    @Test func concurrentReadModifyWritesLoseNoUpdate() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files)) { $0.scriptEngines = 4 }
        defer { Task { try? await server.stop() } }
        let counter = try await server.create("Counter", "{}")
        let stream = try await EventStream(server, headers: TestServer.superuser)
        defer { stream.close() }
        #expect(try await stream.waitFor("retry:"))
        let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var statuses: [Int] = []
                    for _ in 0..<10 { statuses.append(try await server.request(.POST, "/structr/rest/bump").status) }
                    return statuses
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        let committed = statuses.filter { $0 == 200 }.count
        if TestDatabase.isSQLite {
            #expect(committed == 40, "SQLite's writes take turns: \(statuses)")
        } else {
            // On PostgreSQL a write may still conflict after all its attempts when the machine
            // is loaded: it answers 503 and leaves nothing behind.
            #expect(statuses.allSatisfy { $0 == 200 || $0 == 503 }, "\(statuses)")
            #expect(committed >= 30, "\(statuses)")
        }
        // Every committed run counted once: no update was lost.
        #expect(try await server.get("/structr/rest/Counter/\(counter)")["n"] == .int(Int64(committed)))
        // Each committed run raised its event once, with the value it read: an attempt run again
        // left none behind.
        #expect(try await eventually { stream.text.components(separatedBy: "event: bumped").count - 1 == committed })
        let seen = stream.text.split(separator: "\n").filter { $0.hasPrefix("data: ") }.map { $0.dropFirst(6) }
        #expect(Set(seen) == Set((0..<committed).map { Substring(String($0)) }))
    }

    @Test(.enabled(if: TestDatabase.isPostgreSQL, "SQLite's writes take turns and never conflict"))
    func aWriteThatKeepsConflictingIsAbandonedWholeWith503() async throws {
        let directory = try TestDirectory(files: Self.files)
        let server = try await TestServer.start(directory) {
            $0.scriptEngines = 4
            $0.databaseWriteAttempts = 1
        }
        defer { Task { try? await server.stop() } }
        let counter = try await server.create("Counter", "{}")
        let answers = try await withThrowingTaskGroup(of: [HTTPResult].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var answers: [HTTPResult] = []
                    for _ in 0..<15 { answers.append(try await server.request(.POST, "/structr/rest/bump")) }
                    return answers
                }
            }
            return try await group.reduce(into: [HTTPResult]()) { $0 += $1 }
        }
        let committed = answers.filter { $0.status == 200 }.count
        let abandoned = answers.filter { $0.status == 503 }
        #expect(committed + abandoned.count == answers.count)
        #expect(!abandoned.isEmpty, "four writers on one row with one attempt each should conflict")
        for answer in abandoned {
            #expect(answer.json["message"]?.stringValue?.contains("conflicted with concurrent writes") == true)
            #expect(answer.headers["Retry-After"].first == "1")
        }
        // Nothing of an abandoned write remains: the counter and the log count only the commits.
        #expect(try await server.get("/structr/rest/Counter/\(counter)")["n"] == .int(Int64(committed)))
        try await server.stop()
        #expect(try await TestDatabase.loggedEvents(directory).filter { $0.type == "bumped" }.count == committed)
    }
}

/// A database URL Herald cannot use stops start-up with what is wrong, never the password.
@Suite struct DatabaseURLTests {
    func start(_ database: String) async throws -> ExecutableTests.Running {
        let directory = try TestDirectory(files: ConcurrentWriteTests.files)
        let running = try ExecutableTests.Running(
            arguments: ["serve", "--schema", "schema", "--port", "0", "--data", "data", "--database", database],
            environment: ["HERALD_SUPERUSER_PASSWORD": "pw"],
            directory: directory.root
        )
        #expect(try await running.exitStatus() == 1)
        #expect(!running.log.contains("hunter2"), "\(running.log)")
        return running
    }

    @Test func aMalformedURLNamesWhatIsMissing() async throws {
        #expect(try await start("postgresql://herald:hunter2@/app").log.contains("names no host"))
        #expect(try await start("postgresql://herald:hunter2@db:5432").log.contains("names no database"))
        #expect(
            try await start("postgresql://herald:hunter2@db/app?sslmode=maybe").log.contains(
                "sslmode 'maybe' in the database URL is not one of disable, prefer, require, verify-full"
            )
        )
        #expect(
            try await start("mysql://herald:hunter2@db/app").log.contains(
                "database must be sqlite or a postgresql://user:password@host:port/dbname URL"
            )
        )
    }

    @Test func anUnreachableServerStopsStartUpNamingItWithoutThePassword() async throws {
        let port = try LoadGeneratorTests.freePort()  // nothing listens there
        let running = try await start("postgresql://herald:hunter2@127.0.0.1:\(port)/app?sslmode=disable")
        #expect(
            running.log.contains("cannot connect to postgresql://herald:***@127.0.0.1:\(port)/app"),
            "\(running.log)"
        )
    }
}
