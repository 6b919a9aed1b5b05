import Foundation
import HeraldSchema
import Testing

/// The admin console (`/structr/admin`) and the admin resources it uses: `_script`, `_access`,
/// the schema's status and the admin event feed.
@Suite struct AdminConsoleTests {
    static let alice = ["X-User": "alice", "X-Password": "herald-demo"]
    static let admin = ["X-User": "admin", "X-Password": "herald-demo"]
    static let aliceID = "a11ce000000000000000000000000001"
    static let bobID = "b0b00000000000000000000000000002"
    static let carolID = "ca401000000000000000000000000003"

    func script(_ server: TestServer, _ body: JSONValue, headers: [String: String] = TestServer.superuser)
        async throws -> HTTPResult
    {
        try await server.request(.POST, "/structr/rest/_script", body: body.jsonString, headers: headers)
    }

    @Test func theScriptConsoleRollsBackUnlessAskedToCommitAndShowsWhatItLoggedAndRaised() async throws {
        let directory = try TestDirectory()
        let server = try await TestServer.start(directory)
        let source = """
            $.log('making', 1 + 1);
            $.create('DataItem', {name: 'from the console'});
            $.sendEvent('greeting', JSON.stringify({hello: 'alice'}), $.find('User', 'name', 'alice'));
            return $.find('DataItem', 'name', 'from the console').length;
            """
        let stream = try await EventStream(server, headers: Self.alice.merging(["Accept": "text/event-stream"]) { $1 })
        #expect(try await stream.waitFor("retry:"))

        let dry = try await script(server, ["source": .string(source)])
        #expect(dry.status == 200)
        #expect(dry.result["committed"] == false)
        #expect(dry.result["result"] == 1)
        #expect(dry.result["log"] == ["making 2"])
        #expect(dry.result["events"]?[0]?["type"] == "greeting")
        #expect(dry.result["events"]?[0]?["audience"] == ["users": [.string(Self.aliceID)]])
        #expect(dry.result["events"]?[0]?["id"] == .null)
        #expect(try await server.get("/structr/rest/DataItem?name=from%20the%20console").arrayValue?.count == 0)

        let committed = try await script(server, ["source": .string(source), "commit": true])
        #expect(committed.result["committed"] == true)
        #expect(committed.result["events"]?[0]?["id"]?.intValue != nil)
        #expect(try await server.get("/structr/rest/DataItem?name=from%20the%20console").arrayValue?.count == 1)
        // Only the committed run's event reached alice's stream.
        #expect(try await stream.waitFor(#"data: {"hello":"alice"}"#))
        try await Task.sleep(for: .milliseconds(300))
        #expect(stream.text.components(separatedBy: "event: greeting").count == 2)

        // Run as another user: that user's rights apply.
        let asAlice = try await script(
            server,
            ["source": "$.log($.me.name); $.create('ResourceAccess', {signature: 'x', flags: 1});", "runAs": "alice"]
        )
        #expect(asAlice.status == 200)
        #expect(asAlice.result["runAs"] == "alice")
        #expect(asAlice.result["log"] == ["alice"])
        #expect(asAlice.result["error"]?["code"] == 403)
        #expect(asAlice.result["committed"] == false)

        let thrown = try await script(server, ["source": "$.log('before'); throw new Error('boom');", "commit": true])
        #expect(thrown.result["committed"] == false)
        #expect(thrown.result["log"] == ["before"])
        #expect(thrown.result["error"]?["message"]?.stringValue?.contains("boom") == true)

        // Bad requests change nothing and say why; only admins may run scripts.
        #expect(try await script(server, ["commit": true]).status == 400)
        #expect(try await script(server, ["source": "1", "commit": "yes"]).status == 400)
        #expect(try await script(server, ["source": "1", "runAs": "nobody"]).status == 404)
        #expect(try await script(server, ["source": "1"], headers: Self.alice).status == 403)
        #expect(try await script(server, ["source": "1"], headers: [:]).status == 401)
        #expect(
            try await script(server, ["source": "return $.me.name"], headers: Self.admin).result["result"] == "admin"
        )
    }

    @Test func accessTellsWhoCanReadAnObjectAndWhyAndSetsGrants() async throws {
        let directory = try TestDirectory()
        let server = try await TestServer.start(directory)
        let document = try await server.create("Document", #"{"name": "plan", "owner": "\#(Self.aliceID)"}"#)
        let engineering = try #require(try await server.get("/structr/rest/Group?name=Engineering").ids.first)
        let set = try await server.request(
            .PUT,
            "/structr/rest/_access/\(document)",
            body: #"{"principal": "\#(engineering)", "rights": ["read", "write"]}"#
        )
        #expect(set.status == 200)
        let access = set.result
        #expect(access["owner"]?.stringValue == Self.aliceID)
        #expect(access["grants"]?[0]?["principal"]?["name"] == "Engineering")
        #expect(access["grants"]?[0]?["rights"] == ["read", "write"])
        let readers = Dictionary(
            uniqueKeysWithValues: (access["readers"]?.arrayValue ?? []).compactMap { reader in
                reader["name"]?.stringValue.map { ($0, reader["reasons"]?.arrayValue?.compactMap(\.stringValue) ?? []) }
            }
        )
        #expect(readers["alice"] == ["owns it"])
        #expect(readers["bob"] == ["read granted to group Engineering"])
        // carol is in Frontend, which is in Engineering: nested groups inherit.
        #expect(readers["carol"] == ["read granted to group Engineering"])
        #expect(readers["admin"] == ["is an admin"])
        // What it says is what REST does.
        let bob = ["X-User": "bob", "X-Password": "herald-demo"]
        let bobsList = { try await server.request(.GET, "/structr/rest/Document?name=plan", headers: bob).result.ids }
        #expect(try await bobsList() == [document])

        let revoked = try await server.request(
            .PUT,
            "/structr/rest/_access/\(document)",
            body: #"{"principal": "\#(engineering)", "rights": []}"#
        )
        #expect(revoked.result["grants"] == [])
        #expect(revoked.result["readers"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["admin", "alice"])
        #expect(try await bobsList() == [])

        let bad = try await server.request(
            .PUT,
            "/structr/rest/_access/\(document)",
            body: #"{"principal": "\#(engineering)", "rights": ["fly"]}"#
        )
        #expect(bad.status == 400)
        #expect(bad.json["message"]?.stringValue?.contains("fly") == true)
        #expect(try await server.request(.GET, "/structr/rest/_access/\(document)", headers: Self.alice).status == 403)
        #expect(
            try await server.request(.GET, "/structr/rest/_access/\(String(repeating: "0", count: 32))").status == 404
        )
    }

    @Test func theAdminFeedCarriesEveryEventWithItsAudienceToAdminsOnly() async throws {
        let directory = try TestDirectory()
        let server = try await TestServer.start(directory)
        #expect(try await server.request(.GET, "/structr/admin/events", headers: Self.alice).status == 403)
        #expect(try await server.request(.GET, "/structr/admin/events", headers: [:]).status == 401)
        let feed = try await EventStream(server, headers: Self.admin, path: "/structr/admin/events")
        #expect(feed.status == 200)
        #expect(try await feed.waitFor("retry:"))
        // The open feed is no request in progress (HTTP/1.1): only the scrape is.
        let scraped = try await server.request(.GET, "/structr/metrics", headers: Self.admin).text
        #expect(scraped.contains("herald_requests_in_progress 1"), "\(scraped)")
        // A group send, expanded to its members (Frontend nests in Engineering).
        _ = try await server.request(.POST, "/structr/rest/announceSprintPlanning", body: "{}")
        #expect(try await feed.waitFor("event: published\n"))
        let line = try #require(feed.text.split(separator: "\n").first { $0.hasPrefix("data: ") })
        let entry = try JSONValue(parsing: Array(line.dropFirst(6).utf8))
        #expect(entry["type"] == "announcement")
        #expect(entry["audience"] == ["users": [.string(Self.bobID), .string(Self.carolID)]])
        #expect(entry["data"]?.stringValue?.contains("Sprint Planning") == true)
        #expect(entry["id"]?.intValue != nil)
        // Graceful shutdown ends the feed rather than waiting on it.
        try await server.stop()
        #expect(try await eventually { feed.isEnded })
    }

    @Test func theSchemaListingShowsTheLastRefusedEditWithItsFileAndField() async throws {
        let directory = try TestDirectory()
        let server = try await TestServer.start(directory) { $0.schemaReloadInterval = 100 }
        let before = try await server.get("/structr/rest/_schema")
        #expect(before["status"]?["refused"] == .null)
        #expect(before["status"]?["loadedAt"]?.stringValue != nil)
        try directory.write(["Post.json": #"{"properties": {"title": {"type": "strnig"}}}"#])
        #expect(
            try await eventually(20) { try await server.get("/structr/rest/_schema")["status"]?["refused"] != .null }
        )
        let refused = try #require(try await server.get("/structr/rest/_schema")["status"]?["refused"])
        #expect(refused["file"] == "Post.json")
        #expect(refused["field"]?.stringValue?.contains("title") == true)
        #expect(refused["message"]?.stringValue?.contains("strnig") == true)
    }

    @Test func theConsoleIsServedFromTheBinary() async throws {
        let directory = try TestDirectory()
        let server = try await TestServer.start(directory) { $0.publicDirectory = "/nonexistent" }
        let page = try await server.request(.GET, "/structr/admin", headers: [:])
        #expect(page.status == 200)
        #expect(page.text.contains(#"<script type="module" src="/structr/admin/console.js">"#))
        let script = try await server.request(.GET, "/structr/admin/console.js", headers: [:])
        #expect(script.headers["Content-Type"].first?.hasPrefix("text/javascript") == true)
        #expect(script.text.contains("function loginView"))
        #expect(try await server.request(.GET, "/structr/admin/nothing.js", headers: [:]).status == 404)
    }

    /// Headless Chromium drives the console through its main paths (`Tests/Scripts/console_driver.py`):
    /// a plain user is refused; an admin logs in with the keyboard, creates a Post whose missing
    /// title is shown at the field, edits it, ticks a resource grant's checkbox, sees an event in
    /// the monitor and runs a script. Screenshots go to `HERALD_CONSOLE_SCREENSHOTS` when set.
    @Test func chromiumDrivesTheConsolesMainPaths() async throws {
        let directory = try TestDirectory()
        let server = try await TestServer.start(directory)
        _ = try await server.create("ResourceAccess", #"{"signature": "DataItem", "flags": 0}"#)
        #expect(try await server.request(.GET, "/structr/rest/DataItem", headers: Self.alice).status == 401)
        let shots =
            ProcessInfo.processInfo.environment["HERALD_CONSOLE_SCREENSHOTS"]
            ?? directory.root.appendingPathComponent("shots").path
        let driver = repositoryRoot.appendingPathComponent("Tests/Scripts/console_driver.py").path
        let url = server.url("")
        let output = try await offPool {
            try LoadGeneratorTests.run(
                "/usr/bin/python3",
                [driver, url, "admin", "herald-demo", "alice", "herald-demo", "DataItem", shots]
            )
        }
        let last = output.output.split(separator: "\n").last.map(String.init) ?? ""
        let seen = try JSONValue(parsing: Array(last.utf8))
        #expect(seen["error"] == nil, "\(seen["error"] ?? .null) on \(seen["page"] ?? .null)")

        #expect(seen["refusal"]?.stringValue?.contains("admins only") == true)
        #expect(seen["fieldError"] == "must_not_be_empty")
        #expect(seen["focused"] == "field-title")
        let created = try #require(seen["created"]?.stringValue)
        let post = try await server.get("/structr/rest/Post/\(created)")
        #expect(post["title"] == "Edited in the console")
        #expect(post["text"] == "written in the console")
        #expect(seen["listed"]?.stringValue?.contains("Edited in the console") == true)
        // The example post's author is a link to that user.
        #expect(seen["listLinks"]?.arrayValue?.contains(.string("#/data/User/\(Self.aliceID)")) == true)

        #expect(seen["checkedBefore"] == false)
        let grant = try await server.get("/structr/rest/ResourceAccess?signature=DataItem")
        #expect(grant[0]?["flags"] == 1)
        #expect(try await server.request(.GET, "/structr/rest/DataItem", headers: Self.alice).status == 200)
        #expect(seen["readers"]?.stringValue?.contains("owns it") == true)
        #expect(seen["groups"]?.stringValue?.contains("Frontend") == true)

        #expect(seen["monitor"]?.stringValue?.contains("announcement") == true)
        #expect(seen["monitor"]?.stringValue?.contains(Self.bobID) == true)

        #expect(seen["script-outcome"]?.stringValue?.hasPrefix("Rolled back") == true)
        #expect(seen["script-log"] == "from the console")
        #expect(seen["script-events"]?.stringValue?.contains("console-test") == true)
        #expect(try await server.get("/structr/rest/Post?title=rolled%20back").arrayValue?.count == 0)
        // The snippet counted its own Post, which the rollback took away again.
        let posts = try await server.get("/structr/rest/Post").arrayValue?.count ?? 0
        #expect(seen["script-result"]?.stringValue == "\(posts + 1)")

        for name in ["schema", "validation-error", "data", "grants", "users", "events", "scripts"] {
            let size = try FileManager.default.attributesOfItem(atPath: "\(shots)/\(name).png")[.size] as? Int
            #expect((size ?? 0) > 10_000, "screenshot \(name)")
        }
    }
}

extension JSONValue {
    /// The element at `index` of an array, nil for other values or past the end.
    fileprivate subscript(_ index: Int) -> JSONValue? {
        guard let array = arrayValue, array.indices.contains(index) else { return nil }
        return array[index]
    }
}
