import Foundation
import HeraldSchema
import NIOHTTP1
import Testing

/// One event of a stream, parsed.
struct StreamEvent: Equatable, CustomStringConvertible {
    var id: UInt64?
    var type: String
    var data: JSONValue

    var description: String { "\(id.map(String.init) ?? "-") \(type) \(data.jsonString)" }

    /// The events in a stream's text (comments and `retry:` skipped).
    static func parse(_ text: String) -> [StreamEvent] {
        text.components(separatedBy: "\n\n").compactMap { block in
            var id: UInt64?
            var type: String?
            var data: [String] = []
            for line in block.split(separator: "\n") {
                if line.hasPrefix("id: ") { id = UInt64(line.dropFirst(4)) }
                if line.hasPrefix("event: ") { type = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
            }
            guard let type, let value = try? JSONValue(parsing: data.joined(separator: "\n")) else { return nil }
            return StreamEvent(id: id, type: type, data: value)
        }
    }

    /// The object id an event is about.
    var objectID: String? {
        switch type {
        case "enter": data["id"]?.stringValue
        case "update": data["object"]?["id"]?.stringValue
        case "leave": data["id"]?.stringValue
        default: nil
        }
    }
}

/// Live queries: a list asked for as `text/event-stream` gives its snapshot, then `enter`,
/// `update` and `leave` for every committed change to it, under the caller's rights.
@Suite struct LiveQueryTests {
    static let files: [String: String] = [
        "Post.json": #"{"properties": {"title": "string"}}"#,
        "Comment.json": """
        {"properties": {"text": "string", "stars": {"type": "integer", "default": 0}},
         "relationships": {"post": {"to": "Post", "cardinality": "one", "inverse": "comments"}}}
        """,
        "global/failingComment.js":
            "{ $.create('Comment', {text: 'doomed', post: $.arguments.post}); throw new Error('no'); }",
        "global/share.js":
            "{ $.grant($.find('Group', $.arguments.group), $.find('Comment', $.arguments.comment), 'read'); }",
        "global/unshare.js":
            "{ $.revoke($.find('Group', $.arguments.group), $.find('Comment', $.arguments.comment), 'read'); }",
        "initial-data.json": """
        {"User": [{"name": "mia", "password": "mia-pw"}, {"name": "otto", "password": "otto-pw"}],
         "ResourceAccess": [{"signature": "Comment", "flags": 1}]}
        """,
    ]

    static let live = ["Accept": "text/event-stream"]

    static func user(_ name: String) -> [String: String] {
        ["X-User": name, "X-Password": "\(name)-pw"] + live
    }

    func events(_ stream: EventStream) -> [StreamEvent] { StreamEvent.parse(stream.text) }

    /// A superuser's live stream of `path`, reconnecting after the event `lastID`.
    static func reconnect(_ server: TestServer, _ path: String, after lastID: UInt64) async throws -> EventStream {
        try await EventStream(
            server,
            headers: TestServer.superuser + live + ["Last-Event-ID": String(lastID)],
            path: path
        )
    }

    /// Waits until the stream has `count` events of `type` about `id`.
    func waitFor(_ stream: EventStream, _ type: String, _ id: String, count: Int = 1) async throws -> Bool {
        try await eventually(10) { events(stream).count { $0.type == type && $0.objectID == id } >= count }
    }

    @Test func anOpenLiveQueryOverHTTP11HoldsNoRequestTaskAndShutdownEndsIt() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        let stream = try await EventStream(
            server,
            headers: TestServer.superuser + Self.live,
            path: "/structr/rest/Comment"
        )
        #expect(try await eventually { events(stream).first?.type == "snapshot" })
        let scraped = try await server.request(.GET, "/structr/metrics").text
        #expect(scraped.contains("herald_requests_in_progress 1"), "\(scraped)")
        let post = try await server.create("Post", #"{"title": "one"}"#)
        let comment = try await server.create("Comment", #"{"text": "first", "post": "\#(post)"}"#)
        #expect(try await waitFor(stream, "enter", comment))
        try await server.stop()
        #expect(try await eventually(5) { stream.isEnded })
    }

    @Test(arguments: TestTransport.allCases) func aSnapshotThenEveryChangeToTheFilteredListInLogOrder(
        transport: TestTransport
    ) async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: transport)
        defer { Task { try? await server.stop() } }
        let p1 = try await server.create("Post", #"{"title": "one"}"#)
        let p2 = try await server.create("Post", #"{"title": "two"}"#)
        let c1 = try await server.create("Comment", #"{"text": "first", "post": "\#(p1)"}"#)
        let stream = try await EventStream(
            server,
            headers: TestServer.superuser + Self.live,
            path: "/structr/rest/Comment?post=\(p1)&_sort=text"
        )
        defer { stream.close() }
        #expect(stream.status == 200)
        #expect(stream.headers["Content-Type"].first?.hasPrefix("text/event-stream") == true)
        #expect(try await eventually { events(stream).first?.type == "snapshot" })
        let snapshot = try #require(events(stream).first)
        // The snapshot is what the same GET answers as JSON.
        let json = try await server.request(.GET, "/structr/rest/Comment?post=\(p1)&_sort=text")
        #expect(snapshot.data["result"] == json.json["result"])
        #expect(snapshot.data["result_count"] == 1)

        let c2 = try await server.create("Comment", #"{"text": "second", "post": "\#(p1)"}"#)
        #expect(try await waitFor(stream, "enter", c2))
        _ = try await server.create("Comment", #"{"text": "elsewhere", "post": "\#(p2)"}"#)
        let c3 = try await server.create("Comment", #"{"text": "third", "post": "\#(p2)"}"#)
        #expect(try await server.request(.PUT, "/structr/rest/Comment/\(c2)", body: #"{"stars": 5}"#).status == 200)
        #expect(try await waitFor(stream, "update", c2))
        // Linked into the filter, then out of it; deleted.
        #expect(
            try await server.request(.PUT, "/structr/rest/Comment/\(c3)", body: #"{"post": "\#(p1)"}"#).status == 200
        )
        #expect(
            try await server.request(.PUT, "/structr/rest/Post/\(p2)", body: #"{"comments": ["\#(c1)"]}"#).status == 200
        )
        #expect(try await server.request(.DELETE, "/structr/rest/Comment/\(c2)").status == 200)
        // A rolled-back write sends nothing.
        let failed = try await server.request(.POST, "/structr/rest/failingComment", body: #"{"post": "\#(p1)"}"#)
        #expect(failed.status == 422)
        let c4 = try await server.create("Comment", #"{"text": "fourth", "post": "\#(p1)"}"#)
        #expect(try await waitFor(stream, "enter", c4))

        let seen = events(stream)
        #expect(
            seen.map { "\($0.type) \($0.objectID ?? "-")" } == [
                "snapshot -", "enter \(c2)", "update \(c2)", "enter \(c3)", "leave \(c1)", "leave \(c2)", "enter \(c4)",
            ],
            "\(seen)"
        )
        #expect(!stream.text.contains("doomed"))
        let update = try #require(seen.first { $0.type == "update" })
        #expect(update.data["object"]?["stars"] == 5)
        #expect(update.data["changed"]?.arrayValue?.contains("stars") == true)
        #expect(seen.first { $0.type == "enter" }?.data["text"] == "second")
        #expect(seen.first { $0.type == "leave" }?.data == ["id": .string(c1)])
        // Every event has an id from the log, increasing.
        let ids = seen.compactMap(\.id)
        #expect(ids.count == seen.count)
        #expect(ids == ids.sorted() && Set(ids).count == ids.count)
    }

    @Test func visibilityDecidesWhatEntersAndLeavesAndHiddenIdsNeverShow() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        let mia = try #require(
            try await server.get("/structr/rest/User?name=mia").arrayValue?.first?["id"]?.stringValue
        )
        let team = try await server.create("Group", #"{"name": "team"}"#)
        let hidden = try await server.create("Comment", #"{"text": "hidden"}"#)
        let stream = try await EventStream(server, headers: Self.user("mia"), path: "/structr/rest/Comment")
        defer { stream.close() }
        let otto = try await EventStream(server, headers: Self.user("otto"), path: "/structr/rest/Comment")
        defer { otto.close() }
        #expect(try await eventually { events(stream).first?.type == "snapshot" })
        #expect(events(stream).first?.data["result"] == [])

        // Shared with a group mia is not in yet: nothing. Then mia joins: it enters.
        let share = #"{"group": "\#(team)", "comment": "\#(hidden)"}"#
        #expect(try await server.request(.POST, "/structr/rest/share", body: share).status == 200)
        _ = try await server.create("Comment", #"{"text": "marker"}"#)
        #expect(
            try await server.request(.PUT, "/structr/rest/Group/\(team)", body: #"{"members": ["\#(mia)"]}"#).status
                == 200
        )
        #expect(try await waitFor(stream, "enter", hidden))
        #expect(try await server.request(.PUT, "/structr/rest/Comment/\(hidden)", body: #"{"stars": 2}"#).status == 200)
        #expect(try await waitFor(stream, "update", hidden))
        // Revoked: it leaves, and a later change sends no update.
        #expect(try await server.request(.POST, "/structr/rest/unshare", body: share).status == 200)
        #expect(try await waitFor(stream, "leave", hidden))
        #expect(try await server.request(.PUT, "/structr/rest/Comment/\(hidden)", body: #"{"stars": 3}"#).status == 200)
        // A flag makes an object visible to every user.
        let open = try await server.create("Comment", #"{"text": "open", "visibleToAuthenticatedUsers": true}"#)
        #expect(try await waitFor(stream, "enter", open))
        #expect(try await waitFor(otto, "enter", open))
        // Shared again, then mia leaves the group: it leaves her stream.
        #expect(try await server.request(.POST, "/structr/rest/share", body: share).status == 200)
        #expect(try await waitFor(stream, "enter", hidden, count: 2))
        #expect(try await server.request(.PUT, "/structr/rest/Group/\(team)", body: #"{"members": []}"#).status == 200)
        #expect(try await eventually { events(stream).count { $0.type == "leave" && $0.objectID == hidden } == 2 })

        let seen = events(stream).map { "\($0.type) \($0.objectID ?? "-")" }
        #expect(
            seen == [
                "snapshot -", "enter \(hidden)", "update \(hidden)", "leave \(hidden)", "enter \(open)",
                "enter \(hidden)", "leave \(hidden)",
            ],
            "\(seen)"
        )
        #expect(!stream.text.contains("marker"))
        // otto never had the hidden comment: not even its id.
        #expect(!otto.text.contains(hidden), "\(otto.text)")
        #expect(events(otto).map(\.type) == ["snapshot", "enter"])
    }

    @Test func liveQueriesNeedTheListsGrantWhileTheyLastAndDoNotPage() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        let anonymous = try await server.request(.GET, "/structr/rest/Comment", headers: Self.live)
        #expect(anonymous.status == 401)
        let paged = try await server.request(
            .GET,
            "/structr/rest/Comment?_pageSize=10",
            headers: TestServer.superuser + Self.live
        )
        #expect(paged.status == 400)
        #expect(paged.json["message"]?.stringValue?.contains("does not page") == true)
        let badFilter = try await server.request(
            .GET,
            "/structr/rest/Comment?stars=many",
            headers: TestServer.superuser + Self.live
        )
        #expect(badFilter.status == 400)
        // JSON clients get JSON, whatever else they accept.
        let json = try await server.request(
            .GET,
            "/structr/rest/Comment",
            headers: TestServer.superuser.merging(["Accept": "application/json, text/event-stream;q=0.5"]) { $1 }
        )
        #expect(json.status == 200)
        #expect(json.json["result"] == [])

        // A stream lasts as long as its grant: revoked, the stream ends.
        let stream = try await EventStream(server, headers: Self.user("mia"), path: "/structr/rest/Comment")
        defer { stream.close() }
        #expect(try await eventually { events(stream).first?.type == "snapshot" })
        let grant = try #require(try await server.get("/structr/rest/ResourceAccess?signature=Comment").ids.first)
        _ = try await server.create("Comment", #"{"text": "still", "visibleToAuthenticatedUsers": true}"#)
        #expect(try await eventually { events(stream).count == 2 })
        #expect(!stream.isEnded)
        #expect(try await server.request(.DELETE, "/structr/rest/ResourceAccess/\(grant)").status == 200)
        #expect(try await eventually { stream.isEnded })
        #expect(try await server.request(.GET, "/structr/rest/Comment", headers: Self.user("mia")).status == 401)
    }

    @Test func aReconnectGetsWhatItMissedOnceAndInOrder() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        let p1 = try await server.create("Post", #"{"title": "one"}"#)
        let c1 = try await server.create("Comment", #"{"text": "one", "post": "\#(p1)"}"#)
        let path = "/structr/rest/Comment?post=\(p1)"
        let first = try await EventStream(server, headers: TestServer.superuser + Self.live, path: path)
        #expect(try await eventually { events(first).first?.type == "snapshot" })
        let c2 = try await server.create("Comment", #"{"text": "two", "post": "\#(p1)"}"#)
        #expect(try await waitFor(first, "enter", c2))
        let last = try #require(events(first).last?.id)
        first.close()

        // Missed while away: an update, an enter, a leave; an object that came and went sends
        // nothing, and neither does a change outside the filter.
        #expect(try await server.request(.PUT, "/structr/rest/Comment/\(c2)", body: #"{"stars": 4}"#).status == 200)
        let c3 = try await server.create("Comment", #"{"text": "three", "post": "\#(p1)"}"#)
        #expect(try await server.request(.DELETE, "/structr/rest/Comment/\(c1)").status == 200)
        let brief = try await server.create("Comment", #"{"text": "brief", "post": "\#(p1)"}"#)
        #expect(try await server.request(.DELETE, "/structr/rest/Comment/\(brief)").status == 200)
        _ = try await server.create("Comment", #"{"text": "elsewhere"}"#)

        let again = try await Self.reconnect(server, path, after: last)
        defer { again.close() }
        #expect(try await waitFor(again, "leave", c1))
        // Changes after the reconnect follow as usual.
        let c4 = try await server.create("Comment", #"{"text": "four", "post": "\#(p1)"}"#)
        #expect(try await waitFor(again, "enter", c4))
        let seen = events(again)
        #expect(
            seen.map { "\($0.type) \($0.objectID ?? "-")" } == [
                "update \(c2)", "enter \(c3)", "leave \(c1)", "enter \(c4)",
            ],
            "\(seen)"
        )
        #expect(seen.first?.data["object"]?["stars"] == 4)
        let ids = seen.compactMap(\.id)
        #expect(ids.count == seen.count && ids == ids.sorted() && ids.first.map { $0 > last } == true)
        #expect(!again.text.contains(brief))

        // An id older than any this query's open and kept streams went through gets a fresh
        // snapshot (the first stream was taken up by `again`, which started at `last`).
        let stale = try await Self.reconnect(server, path, after: last - 1)
        defer { stale.close() }
        #expect(try await eventually { events(stale).first?.type == "snapshot" })
        let snapshot = try #require(events(stale).first)
        #expect(Set(snapshot.data["result"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []) == [c2, c3, c4])
    }

    @Test func aPropertyFilterSeesObjectsUpdatedIntoAndOutOfIt() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        let low = try await server.create("Comment", #"{"text": "low", "stars": 1}"#)
        let high = try await server.create("Comment", #"{"text": "high", "stars": 4}"#)
        let stream = try await EventStream(
            server,
            headers: TestServer.superuser + Self.live,
            path: "/structr/rest/Comment?stars=%5B3%20TO%205%5D"
        )
        defer { stream.close() }
        #expect(try await eventually { events(stream).first?.type == "snapshot" })
        #expect(events(stream).first?.data["result"]?.ids == [high])
        #expect(try await server.request(.PUT, "/structr/rest/Comment/\(low)", body: #"{"stars": 3}"#).status == 200)
        #expect(try await waitFor(stream, "enter", low))
        #expect(try await server.request(.PUT, "/structr/rest/Comment/\(high)", body: #"{"stars": 2}"#).status == 200)
        #expect(try await waitFor(stream, "leave", high))
        #expect(try await server.request(.PUT, "/structr/rest/Comment/\(high)", body: #"{"stars": 1}"#).status == 200)
        #expect(
            try await server.request(.PUT, "/structr/rest/Comment/\(low)", body: #"{"text": "still in"}"#).status == 200
        )
        #expect(try await waitFor(stream, "update", low))
        let seen = events(stream).map { "\($0.type) \($0.objectID ?? "-")" }
        #expect(seen == ["snapshot -", "enter \(low)", "leave \(high)", "update \(low)"], "\(seen)")
        #expect(events(stream).last?.data["changed"]?.arrayValue?.contains("text") == true)
    }

    @Test func aReconnectPastWhatTheLogKeepsStartsFromAFreshSnapshot() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files)) { $0.eventHistoryCount = 3 }
        defer { Task { try? await server.stop() } }
        let path = "/structr/rest/Comment"
        let first = try await EventStream(server, headers: TestServer.superuser + Self.live, path: path)
        #expect(try await eventually { events(first).first?.type == "snapshot" })
        let c1 = try await server.create("Comment", #"{"text": "one"}"#)
        #expect(try await waitFor(first, "enter", c1))
        let last = try #require(events(first).last?.id)
        first.close()
        // Enough changes that pruning (every second) drops the records after `last`.
        for n in 0..<6 { _ = try await server.create("Comment", #"{"text": "n\#(n)"}"#) }
        try await Task.sleep(for: .milliseconds(2500))
        let again = try await Self.reconnect(server, path, after: last)
        defer { again.close() }
        #expect(try await eventually { !events(again).isEmpty })
        #expect(events(again).first?.type == "snapshot")
        #expect(events(again).first?.data["result_count"] == 7)
    }

    /// The change records in the event log.
    static func changeRecords(_ directory: TestDirectory) async throws -> Int {
        try await TestDatabase.loggedEvents(directory).filter { $0.type == "change" }.count
    }

    @Test func writesRecordTheirChangesOnlyWhileLiveQueriesFollowThem() async throws {
        let directory = try TestDirectory(files: Self.files)
        let server = try await TestServer.start(directory)
        defer { Task { try? await server.stop() } }
        _ = try await server.create("Comment", #"{"text": "unseen"}"#)
        #expect(try await Self.changeRecords(directory) == 0)
        let stream = try await EventStream(
            server,
            headers: TestServer.superuser + Self.live,
            path: "/structr/rest/Comment"
        )
        #expect(try await eventually { events(stream).first?.type == "snapshot" })
        let seen = try await server.create("Comment", #"{"text": "seen"}"#)
        #expect(try await waitFor(stream, "enter", seen))
        #expect(try await Self.changeRecords(directory) == 1)
        stream.close()
        // An ended stream may resume: changes are still recorded for it.
        try await Task.sleep(for: .milliseconds(300))
        _ = try await server.create("Comment", #"{"text": "while away"}"#)
        #expect(try await Self.changeRecords(directory) == 2)
    }

    /// One statement's single value, read with `psql`.
    static func psqlValue(_ url: String, _ sql: String) throws -> String {
        let process = try ChildProcess("/usr/bin/psql", ["-X", "-q", "-t", "-A", url, "-c", sql])
        process.waitUntilExit()
        return String(decoding: process.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A write that looked whether changes were followed just before the first live query
    /// opened, and commits just after: on PostgreSQL (many writers at once) the new stream must
    /// still see it. The write is held between its look and its commit by the event log's
    /// advisory lock, which a psql session holds for four seconds.
    @Test(.enabled(if: TestDatabase.isPostgreSQL, "PostgreSQL runs writes side by side"))
    func aWriteThatLookedBeforeTheFirstLiveQueryOpenedIsInItsSnapshot() async throws {
        let directory = try TestDirectory(
            files: Self.files.merging(["Post/onCreate.js": "{ $.broadcastEvent('post', $.this.title); }"]) { $1 }
        )
        let server = try await TestServer.start(directory)
        defer { Task { try? await server.stop() } }
        let database = try #require(directory.database)
        // PostgreSQLConnection.eventLogLock.
        let lock = Int64(0x4845_5241_4C44_4556)
        let holder = try ChildProcess(
            "/usr/bin/psql",
            ["-X", "-q", database, "-c", "SELECT pg_advisory_lock(\(lock))", "-c", "SELECT pg_sleep(4)"]
        )
        defer { holder.stop() }
        // The server is shared with the other tests' databases: count this database's locks only.
        let advisory = """
            SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """
        #expect(try await eventually(5) { try Self.psqlValue(database, advisory + " AND granted") == "1" })
        let write = Task { try await server.create("Post", #"{"title": "held"}"#) }
        // The create has looked (no live query yet) and waits for the lock to append its event.
        #expect(try await eventually(5) { try Self.psqlValue(database, advisory + " AND NOT granted") == "1" })
        let stream = try await EventStream(
            server,
            headers: TestServer.superuser + Self.live,
            path: "/structr/rest/Post"
        )
        let post = try await write.value
        let seen = try await eventually(10) {
            events(stream).contains { event in
                (event.type == "enter" && event.objectID == post)
                    || (event.type == "snapshot"
                        && event.data["result"]?.arrayValue?.contains { $0["id"]?.stringValue == post } == true)
            }
        }
        #expect(seen, "\(stream.text)")
    }

    @Test func afterAGracefulRestartAReconnectStillGetsWhatItMissed() async throws {
        let directory = try TestDirectory(files: Self.files)
        let server = try await TestServer.start(directory)
        let path = "/structr/rest/Comment?_sort=text"
        let first = try await EventStream(server, headers: TestServer.superuser + Self.live, path: path)
        #expect(try await eventually { events(first).first?.type == "snapshot" })
        let c1 = try await server.create("Comment", #"{"text": "one"}"#)
        #expect(try await waitFor(first, "enter", c1))
        let last = try #require(events(first).last?.id)
        #expect(try await server.request(.PUT, "/structr/rest/Comment/\(c1)", body: #"{"stars": 1}"#).status == 200)
        #expect(try await waitFor(first, "update", c1))
        first.close()
        try await server.stop()

        // The stream was kept across the restart: its client's reconnect resumes after `last`.
        let restarted = try await TestServer.start(directory)
        defer { Task { try? await restarted.stop() } }
        let c2 = try await restarted.create("Comment", #"{"text": "two"}"#)
        let again = try await Self.reconnect(restarted, path, after: last)
        defer { again.close() }
        #expect(try await waitFor(again, "enter", c2))
        let seen = events(again).map { "\($0.type) \($0.objectID ?? "-")" }
        #expect(seen == ["update \(c1)", "enter \(c2)"], "\(seen)")
        // Another query does not take up this stream's state: it starts from a snapshot.
        let stale = try await Self.reconnect(restarted, "/structr/rest/Comment?_sort=createdDate", after: last)
        defer { stale.close() }
        #expect(try await eventually { events(stale).first?.type == "snapshot" })
    }
}

extension Dictionary where Key == String, Value == String {
    static func + (lhs: Self, rhs: Self) -> Self { lhs.merging(rhs) { $1 } }
}
