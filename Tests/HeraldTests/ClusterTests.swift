import Foundation
import HeraldSchema
import Synchronization
import Testing

/// Several Herald nodes on one PostgreSQL database: events, replay, logout, caches, unique
/// values and schedules hold across them. Each node has a data folder of its own.
@Suite(.enabled(if: TestDatabase.isPostgreSQL, "a cluster shares a PostgreSQL database"))
struct ClusterTests {
    static let files: [String: String] = [
        "Tag.json": #"{"properties": {"name": {"type": "string", "unique": true}}}"#,
        "Note.json": #"{"properties": {"text": "string"}}"#,
        "Note/afterCreate.js": "{ $.broadcastEvent('note', $.this.text); }",
        "global/shout.js": "{ $.broadcastEvent('shout', $.arguments.text); }",
        "global/tell.js": """
        { return $.sendEvent('told', $.arguments.text, $.find('User', 'name', $.arguments.to)); }
        """,
        "global/share.js": """
        { $.grant($.first($.find('Group', 'name', $.arguments.group)), $.find('Note', $.arguments.note), 'read'); }
        """,
        "initial-data.json": """
        {"User": [{"name": "ann", "password": "ann-pw"}, {"name": "ben", "password": "ben-pw"}],
         "ResourceAccess": [{"signature": "_eventSource", "flags": 1}, {"signature": "Note/_id", "flags": 1}]}
        """,
    ]

    /// `count` nodes on one directory's database, each with a data folder of its own.
    static func cluster(_ directory: TestDirectory, _ count: Int = 3) async throws -> [TestServer] {
        var nodes: [TestServer] = []
        for n in 0..<count {
            nodes.append(
                try await TestServer.start(directory) {
                    $0.dataDirectory = directory.root.appendingPathComponent("node-\(n)").path
                }
            )
        }
        return nodes
    }

    /// A node as a process of its own on `directory`'s database, for a test to SIGKILL.
    static func process(_ directory: TestDirectory, data: String) throws -> ExecutableTests.Running {
        try ExecutableTests.Running(
            arguments: ["serve", "--schema", "schema", "--port", "0", "--data", data],
            environment: ["HERALD_SUPERUSER_PASSWORD": TestServer.superuserPassword, "HERALD_BCRYPT_COST": "4"],
            directory: directory.root,
            database: directory.database
        )
    }

    static func stop(_ nodes: [TestServer]) async {
        for node in nodes { try? await node.stop() }
    }

    static func ids(_ text: String, of type: String) -> [String] {
        text.components(separatedBy: "\n\n").filter { $0.contains("event: \(type)") }.compactMap { block in
            block.split(separator: "\n").first { $0.hasPrefix("id: ") }.map { String($0.dropFirst(4)) }
        }
    }

    @Test func aBroadcastFromOneNodeReachesStreamsOnEveryNodeWithOneId() async throws {
        let nodes = try await Self.cluster(try TestDirectory(files: Self.files))
        let streams = try await nodes.asyncMap { try await EventStream($0, headers: TestServer.superuser) }
        for stream in streams { #expect(try await stream.waitFor("retry:")) }
        for n in 0..<5 {
            let answer = try await nodes[0].request(.POST, "/structr/rest/shout", body: #"{"text": "s\#(n)"}"#)
            #expect(answer.status == 200)
        }
        _ = try await nodes[1].create("Note", #"{"text": "from B"}"#)
        for stream in streams {
            #expect(try await eventually { Self.ids(stream.text, of: "shout").count == 5 })
            #expect(try await stream.waitFor("data: from B"))
        }
        // The same ids everywhere, in order.
        let first = Self.ids(streams[0].text, of: "shout")
        #expect(first == first.sorted { UInt64($0)! < UInt64($1)! })
        for stream in streams { #expect(Self.ids(stream.text, of: "shout") == first) }
        for stream in streams { stream.close() }
        await Self.stop(nodes)
    }

    @Test func sendEventOnOneNodeReachesTheUserOnAnotherAndOnlyThem() async throws {
        let nodes = try await Self.cluster(try TestDirectory(files: Self.files))
        let ann = try await EventStream(nodes[2], headers: ["X-User": "ann", "X-Password": "ann-pw"])
        let ben = try await EventStream(nodes[1], headers: ["X-User": "ben", "X-Password": "ben-pw"])
        #expect(try await ann.waitFor("retry:"))
        #expect(try await ben.waitFor("retry:"))
        let answer = try await nodes[0].request(.POST, "/structr/rest/tell", body: #"{"text": "psst", "to": "ann"}"#)
        #expect(answer.status == 200)
        #expect(try await ann.waitFor("data: psst"))
        try await Task.sleep(for: .milliseconds(300))
        #expect(!ben.text.contains("psst"))
        ann.close()
        ben.close()
        await Self.stop(nodes)
    }

    @Test func sendEventSaysWhetherAStreamOnAnyNodeWillReceiveIt() async throws {
        let directory = try TestDirectory(files: Self.files)
        let nodes = try await Self.cluster(directory, 2)
        let tell = #"{"text": "hi", "to": "ann"}"#
        #expect(try await nodes[0].request(.POST, "/structr/rest/tell", body: tell).result == false)
        let other = try Self.process(directory, data: "node-other")
        let far = try TestServer.attach(directory, port: try await other.port())
        let ann = try await EventStream(far, headers: ["X-User": "ann", "X-Password": "ann-pw"])
        #expect(try await ann.waitFor("retry:"))
        // The stream's node records it within a second.
        #expect(
            try await eventually(3) {
                try await nodes[0].request(.POST, "/structr/rest/tell", body: tell).result == true
            }
        )
        #expect(
            try await nodes[1].request(.POST, "/structr/rest/tell", body: #"{"text": "hi", "to": "ben"}"#).result
                == false
        )
        // A node that dies without taking its presence back counts as gone after the expiry.
        kill(other.process.processIdentifier, SIGKILL)
        _ = try? await other.exitStatus()
        #expect(
            try await eventually(15) {
                try await nodes[0].request(.POST, "/structr/rest/tell", body: tell).result == false
            }
        )
        ann.close()
        await Self.stop(nodes)
    }

    @Test func aClientOfAKilledNodeReconnectsToAnotherWithLastEventIDAndMissesNothing() async throws {
        let directory = try TestDirectory(files: Self.files)
        let nodes = try await Self.cluster(directory, 2)
        let killed = try Self.process(directory, data: "node-killed")
        let victim = try TestServer.attach(directory, port: try await killed.port())
        let stream = try await EventStream(victim, headers: TestServer.superuser)
        #expect(try await stream.waitFor("retry:"))
        // A writer on the first node broadcasts throughout; the second node's stream is killed.
        let written = Mutex(0)
        let writer = Task {
            for n in 0..<60 {
                let answer = try await nodes[0].request(.POST, "/structr/rest/shout", body: #"{"text": "n\#(n)"}"#)
                if answer.status == 200 { written.withLock { $0 += 1 } }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        #expect(try await eventually { Self.ids(stream.text, of: "shout").count >= 10 })
        kill(killed.process.processIdentifier, SIGKILL)
        _ = try? await killed.exitStatus()
        let seen = Self.ids(stream.text, of: "shout")
        let last = try #require(seen.last)
        try await writer.value
        #expect(written.withLock { $0 } == 60)
        // Another node, from the last id the client saw.
        let again = try await EventStream(
            nodes[1],
            headers: TestServer.superuser.merging(["Last-Event-ID": last]) { $1 }
        )
        #expect(try await eventually { seen.count + Self.ids(again.text, of: "shout").count >= 60 })
        let replayed = Self.ids(again.text, of: "shout")
        let all = seen + replayed
        #expect(all.count == 60, "each event exactly once: \(all.count)")
        #expect(Set(all).count == all.count)
        #expect(all == all.sorted { UInt64($0)! < UInt64($1)! })
        #expect(!again.text.contains("event: resync"))
        stream.close()
        again.close()
        await Self.stop(nodes)
    }

    @Test func concurrentCreatesOfOneUniqueValueOnEveryNodeGiveOne201() async throws {
        let nodes = try await Self.cluster(try TestDirectory(files: Self.files))
        let answers = try await withThrowingTaskGroup(of: HTTPResult.self) { group in
            for n in 0..<12 {
                group.addTask {
                    try await nodes[n % 3].request(.POST, "/structr/rest/Tag", body: #"{"name": "only"}"#)
                }
            }
            return try await group.reduce(into: [HTTPResult]()) { $0.append($1) }
        }
        #expect(answers.filter { $0.status == 201 }.count == 1)
        for answer in answers where answer.status != 201 {
            #expect(answer.status == 422, "\(answer.text)")
            #expect(answer.text.contains("already_taken"), "\(answer.text)")
        }
        await Self.stop(nodes)
    }

    @Test func aGrantRevokedOnOneNodeTakesEffectOnAnotherWithinASecond() async throws {
        let nodes = try await Self.cluster(try TestDirectory(files: Self.files), 2)
        let grant = try await nodes[0].create(
            "ResourceAccess",
            #"{"signature": "Tag", "flags": 1, "visibleToAuthenticatedUsers": true}"#
        )
        let ann = ["X-User": "ann", "X-Password": "ann-pw"]
        // The second node caches the grant by using it.
        #expect(try await nodes[1].request(.GET, "/structr/rest/Tag", headers: ann).status == 200)
        #expect(try await nodes[0].request(.DELETE, "/structr/rest/ResourceAccess/\(grant)").status == 200)
        // A request sent within a second of the revocation is refused (how long it then takes
        // to answer is the loaded machine's).
        #expect(
            try await eventually(1) {
                try await nodes[1].request(.GET, "/structr/rest/Tag", headers: ann).status != 200
            }
        )
        await Self.stop(nodes)
    }

    @Test func leavingAGroupOnOneNodeTakesItsRightsAwayOnAnotherWithinASecond() async throws {
        let nodes = try await Self.cluster(try TestDirectory(files: Self.files), 2)
        let ann = try #require(
            try await nodes[0].get("/structr/rest/User?name=ann").arrayValue?.first?["id"]?.stringValue
        )
        let group = try await nodes[0].create("Group", #"{"name": "team", "members": ["\#(ann)"]}"#)
        let note = try await nodes[0].create("Note", #"{"text": "for the team"}"#)
        let share = #"{"group": "team", "note": "\#(note)"}"#
        #expect(try await nodes[0].request(.POST, "/structr/rest/share", body: share).status == 200)
        let asAnn = ["X-User": "ann", "X-Password": "ann-pw"]
        // The second node caches ann's groups by using them.
        #expect(try await nodes[1].request(.GET, "/structr/rest/Note/\(note)", headers: asAnn).status == 200)
        #expect(
            try await nodes[0].request(.PUT, "/structr/rest/Group/\(group)", body: #"{"members": []}"#).status == 200
        )
        // A request sent within a second of leaving is refused.
        #expect(
            try await eventually(1) {
                try await nodes[1].request(.GET, "/structr/rest/Note/\(note)", headers: asAnn).status == 404
            }
        )
        await Self.stop(nodes)
    }

    @Test func loggingOutOnOneNodeClosesTheSessionsStreamsOnAnother() async throws {
        let nodes = try await Self.cluster(try TestDirectory(files: Self.files), 2)
        let session = try await nodes[0].login("ann", "ann-pw")
        let cookie = ["Cookie": "JSESSIONID=\(session)"]
        let stream = try await EventStream(nodes[1], headers: cookie)
        #expect(try await stream.waitFor("retry:"))
        #expect(try await nodes[1].request(.GET, "/structr/rest/me", headers: cookie).status == 200)
        let out = try await nodes[0].request(.POST, "/structr/rest/logout", headers: cookie)
        #expect(out.status == 200)
        #expect(try await eventually(2) { stream.isEnded })
        #expect(try await nodes[1].request(.GET, "/structr/rest/me", headers: cookie).status == 401)
        await Self.stop(nodes)
    }

    @Test func nodesStartingTogetherOnAnEmptyDatabaseMigrateItOnce() async throws {
        // The example app: its initial data gives objects their ids, which the nodes race for.
        let directory = try TestDirectory()
        async let a = TestServer.start(directory) { $0.dataDirectory = directory.root.appendingPathComponent("a").path }
        async let b = TestServer.start(directory) { $0.dataDirectory = directory.root.appendingPathComponent("b").path }
        async let c = TestServer.start(directory) { $0.dataDirectory = directory.root.appendingPathComponent("c").path }
        let nodes = try await [a, b, c]
        // The initial data was loaded once, whichever node came first.
        for node in nodes {
            #expect(try await node.get("/structr/rest/User").arrayValue?.count == 4)
        }
        await Self.stop(nodes)
    }

    @Test func aNodeWhoseSchemaWouldDropWhatTheDatabaseHoldsRefusesToServeNamingIt() async throws {
        let directory = try TestDirectory(
            files: Self.files.merging(["Note.json": #"{"properties": {"text": "string", "mood": "string"}}"#]) { $1 }
        )
        let newer = try await TestServer.start(directory)
        _ = try await newer.create("Note", #"{"text": "t", "mood": "calm"}"#)
        // An older node, without `mood`, comes up against the migrated database.
        let older = try TestDirectory(files: Self.files)
        let running = try ExecutableTests.Running(
            arguments: ["serve", "--schema", older.schema.path, "--port", "0", "--data", "old-node"],
            environment: ["HERALD_SUPERUSER_PASSWORD": "pw"],
            directory: directory.root,
            database: directory.database
        )
        #expect(try await running.exitStatus() == 1)
        #expect(running.log.contains("remove property Note.mood (1 values)"), "\(running.log)")
        #expect(running.log.contains("--allow-destructive-migrations"))
        // The newer node and its data are untouched.
        #expect(try await newer.get("/structr/rest/Note").arrayValue?.first?["mood"] == "calm")
        try await newer.stop()
    }

    @Test func aScheduleRunsOnceACluster() async throws {
        let files = Self.files.merging([
            "Tick.json": #"{"properties": {"second": "string"}}"#,
            "global/tick.js": "{ $.create('Tick', {second: String(Math.floor(Date.now() / 1000))}); }",
            "schedules.json": #"{"tick": "* * * * * *"}"#,
        ]) { $1 }
        let started = ContinuousClock.now
        let nodes = try await Self.cluster(try TestDirectory(files: files))
        try await Task.sleep(for: .seconds(4))
        let ticks = try await nodes[0].get("/structr/rest/Tick?pageSize=1000").arrayValue ?? []
        let elapsed = (ContinuousClock.now - started).components.seconds
        let seconds = ticks.compactMap { $0["second"]?.stringValue }.sorted()
        // Three nodes tick every second; each second runs on one of them: at most one run per
        // second elapsed (a run that starts late records the next second, so the seconds a
        // run recorded may repeat on a loaded machine).
        #expect(seconds.count >= 3)
        #expect(seconds.count <= Int(elapsed) + 1, "more runs than seconds: \(seconds)")
        await Self.stop(nodes)
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
