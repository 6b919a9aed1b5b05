import Foundation
import HeraldSchema
import Testing

/// A real headless Chromium runs the reference doc's client code against the example app.
@Suite struct BrowserTests {
    /// The page reports what it sees to the server, so the test needs no browser protocol.
    static let page = """
        <!doctype html>
        <meta charset="utf-8">
        <script>
        function report(stage, detail) {
          return fetch('/structr/rest/report', { method: 'POST', credentials: 'include',
            headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ stage, detail }) });
        }
        (async () => {
          const login = await fetch('/structr/rest/login', { method: 'POST', credentials: 'include',
            headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'alice', password: 'herald-demo' }) });
          await report('login', String(login.status));
          const source = new EventSource('/structr/EventSource', {
              withCredentials: true
          });
          source.onopen = function(event) {
              report('open', '');
          };
          let seen = 0;  // the order the page saw them in; reports may arrive in any order
          source.addEventListener('notification', function(event) {
              report('notification', JSON.stringify({ seen: ++seen, id: event.lastEventId, data: JSON.parse(event.data) }));
          });
        })();
        </script>
        """

    static let chromium = "/usr/bin/chromium"

    /// Headless Chromium on `url`, with a profile in `directory`.
    static func headlessChromium(_ directory: TestDirectory, _ url: String) throws -> ChildProcess {
        try ChildProcess(
            chromium,
            [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                "--user-data-dir=\(directory.root.appendingPathComponent("chrome").path)", url,
            ],
            captureOutput: false
        )
    }

    /// The example app with a `report` method for pages, and `page` in a public folder of its own.
    static func exampleApp(serving page: String, as name: String) throws -> (TestDirectory, publicFolder: URL) {
        let directory = try TestDirectory()
        try directory.write([
            "Report.json": #"{"properties": {"stage": "string", "detail": "string"}}"#,
            "global/report.js": "{ $.create('Report', {stage: $.arguments.stage, detail: $.arguments.detail}); }",
        ])
        let publicFolder = directory.root.appendingPathComponent("public")
        try FileManager.default.createDirectory(at: publicFolder, withIntermediateDirectories: true)
        try Data(page.utf8).write(to: publicFolder.appendingPathComponent(name))
        return (directory, publicFolder)
    }

    func reports(_ server: TestServer, _ stage: String) async throws -> [String] {
        let list = try await server.get("/structr/rest/Report?stage=\(stage)&_sort=createdDate")
        return (list.arrayValue ?? []).compactMap { $0["detail"]?.stringValue }
    }

    @Test func aCommentNotifiesThePostsAuthorInTheBrowserAndNothingIsLostAcrossADroppedStream() async throws {
        let (directory, publicFolder) = try Self.exampleApp(serving: Self.page, as: "test.html")
        let configure: (inout HeraldServerConfiguration) -> Void = {
            $0.publicDirectory = publicFolder.path
            $0.eventSourceRetry = 1500
        }
        var server = try await TestServer.start(directory, configure: configure)
        _ = try await server.create("ResourceAccess", #"{"signature": "report", "flags": 4}"#)

        let browser = try ChildProcess(
            Self.chromium,
            [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                "--user-data-dir=\(directory.root.appendingPathComponent("chrome").path)",
                "http://127.0.0.1:\(server.port)/test.html",
            ],
            captureOutput: false
        )
        defer { browser.stop() }

        #expect(try await eventually(30) { try await reports(server, "open").count >= 1 })
        #expect(try await reports(server, "login") == ["200"])

        // bob comments on alice's post; the Comment type's afterCreate notifies alice's page.
        let bob = ["X-User": "bob", "X-Password": "herald-demo"]
        let post = "9057000000000000000000000000a001"
        let bobID = try #require(try await server.get("/structr/rest/User?name=bob").ids.first)
        let comment = #"{"text": "First!", "post": "\#(post)", "author": "\#(bobID)"}"#
        #expect(try await server.request(.POST, "/structr/rest/Comment", body: comment, headers: bob).status == 201)
        #expect(try await eventually(10) { try await reports(server, "notification").count == 1 })
        let first = try JSONValue(parsing: try await reports(server, "notification")[0])
        #expect(first["data"]?["type"] == "new-comment")
        #expect(first["data"]?["authorName"] == "bob")
        #expect(first["data"]?["postId"] == .string(post))

        // The server goes away and comes back; two comments arrive before the browser reconnects.
        let port = server.port
        try await server.stop()
        server = try await TestServer.start(directory) {
            configure(&$0)
            $0.port = port
        }
        defer { Task { [server] in try? await server.stop() } }
        for text in ["Second", "Third"] {
            let body = #"{"text": "\#(text)", "post": "\#(post)", "author": "\#(bobID)"}"#
            #expect(try await server.request(.POST, "/structr/rest/Comment", body: body, headers: bob).status == 201)
        }
        #expect(try await eventually(20) { try await reports(server, "notification").count >= 3 })
        try await Task.sleep(for: .milliseconds(500))
        let notes = try await reports(server, "notification").map { try JSONValue(parsing: $0) }
            .sorted { ($0["seen"]?.intValue ?? 0) < ($1["seen"]?.intValue ?? 0) }
        #expect(notes.count == 3)
        let ids = notes.compactMap { $0["id"]?.stringValue.flatMap { UInt64($0) } }
        #expect(ids.count == 3 && ids[0] < ids[1] && ids[1] < ids[2])
        #expect(notes.compactMap { $0["data"]?["preview"]?.stringValue } == ["First!", "Second", "Third"])
        #expect(try await reports(server, "open").count >= 2)
    }

    /// The example app's live comment list (`public/live-comments.js`, on `/structr/live.js`),
    /// reporting what the list shows after every change.
    static let livePage = """
        <!doctype html>
        <meta charset="utf-8">
        <ul id="comments"></ul>
        <script type="module">
        import { showLiveComments } from '/live-comments.js';
        function report(stage, detail) {
          return fetch('/structr/rest/report', { method: 'POST', credentials: 'include',
            headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ stage, detail }) });
        }
        const login = await fetch('/structr/rest/login', { method: 'POST', credentials: 'include',
          headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'alice', password: 'herald-demo' }) });
        await report('login', String(login.status));
        let seen = 0;
        showLiveComments(document.getElementById('comments'), '9057000000000000000000000000a001', (change) => {
          const shown = [...document.querySelectorAll('#comments li')].map((item) => item.textContent);
          report('live', JSON.stringify({ seen: ++seen, kind: change.kind, shown }));
        });
        </script>
        """

    @Test func theExamplePageKeepsAPostsCommentsLiveFromOneStream() async throws {
        let (directory, publicFolder) = try Self.exampleApp(serving: Self.livePage, as: "live.html")
        try FileManager.default.copyItem(
            at: repositoryRoot.appendingPathComponent("public/live-comments.js"),
            to: publicFolder.appendingPathComponent("live-comments.js")
        )
        let server = try await TestServer.start(directory) { $0.publicDirectory = publicFolder.path }
        defer { Task { try? await server.stop() } }
        _ = try await server.create("ResourceAccess", #"{"signature": "report", "flags": 4}"#)
        let browser = try Self.headlessChromium(directory, server.url("/live.html"))
        defer { browser.stop() }
        /// What the list showed after each change, in the order the page saw them.
        func shown() async throws -> [(kind: String, shown: [String])] {
            try await reports(server, "live").map { try JSONValue(parsing: $0) }
                .sorted { ($0["seen"]?.intValue ?? 0) < ($1["seen"]?.intValue ?? 0) }
                .map { ($0["kind"]?.stringValue ?? "", ($0["shown"]?.arrayValue ?? []).compactMap(\.stringValue)) }
        }
        #expect(try await eventually(30) { try await shown().first?.kind == "snapshot" })
        #expect(try await reports(server, "login") == ["200"])
        #expect(try await shown().first?.shown == [])

        // bob comments, the comment is edited, then deleted: alice's list follows each step.
        let bob = ["X-User": "bob", "X-Password": "herald-demo"]
        let post = "9057000000000000000000000000a001"
        let bobID = try #require(try await server.get("/structr/rest/User?name=bob").ids.first)
        let body = #"{"text": "First!", "post": "\#(post)", "author": "\#(bobID)"}"#
        let created = try await server.request(.POST, "/structr/rest/Comment", body: body, headers: bob)
        #expect(created.status == 201)
        let comment = try #require(created.result.arrayValue?.first?.stringValue)
        #expect(try await eventually(10) { try await shown().last?.shown == ["First! (bob)"] })
        #expect(
            try await server.request(.PUT, "/structr/rest/Comment/\(comment)", body: #"{"text": "Edited"}"#).status
                == 200
        )
        #expect(try await eventually(10) { try await shown().last?.shown == ["Edited (bob)"] })
        #expect(try await server.request(.DELETE, "/structr/rest/Comment/\(comment)").status == 200)
        #expect(try await eventually(10) { try await shown().last?.shown == [] })
        #expect(try await shown().map(\.kind) == ["snapshot", "enter", "update", "leave"])
    }

    /// Ten EventSources and a REST call from one page.
    static let manySourcesPage = """
        <!doctype html>
        <meta charset="utf-8">
        <script>
        function report(stage, detail) {
          return fetch('/structr/rest/report', { method: 'POST',
            headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ stage, detail }) });
        }
        const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
        (async () => {
          const sources = [], opened = new Set(), pinged = new Set();
          for (let i = 0; i < 10; i++) {
            const source = new EventSource('/structr/EventSource');
            source.onopen = () => opened.add(i);
            source.addEventListener('ping', () => pinged.add(i));
            sources.push(source);
          }
          const started = Date.now();
          while (opened.size < 10 && Date.now() - started < 10000) await sleep(50);
          // A REST call with the sources open: answered, or still waiting after 3 s.
          const call = fetch('/structr/rest/Item').then(answer => 'answered ' + answer.status);
          const probe = await Promise.race([call, sleep(3000).then(() => 'pending')]);
          const state = { opened: opened.size, states: sources.map(source => source.readyState), probe };
          if (opened.size < 10) {
            // Over HTTP/1.1 every connection the browser allows is taken: free them to report.
            sources.forEach(source => source.close());
            await call;
            await report('state', JSON.stringify(state));
            return;
          }
          await report('state', JSON.stringify(state));
          while (pinged.size < 10) await sleep(50);
          await report('pinged', String(pinged.size));
        })();
        </script>
        """

    /// What the many-sources page reports over `transport`.
    func manySources(over transport: TestTransport) async throws -> (state: JSONValue, pinged: [String]) {
        let directory = try TestDirectory(files: [
            "Item.json": #"{"properties": {"name": "string"}}"#,
            "Report.json": #"{"properties": {"stage": "string", "detail": "string"}}"#,
            "global/report.js": "{ $.create('Report', {stage: $.arguments.stage, detail: $.arguments.detail}); }",
            "global/ping.js": "{ $.broadcastEvent('ping', 'hello', true, true); }",
            "initial-data.json": """
            {"ResourceAccess": [{"signature": "_eventSource", "flags": 16}, {"signature": "report", "flags": 64},
                                {"signature": "Item", "flags": 16}]}
            """,
        ])
        let publicFolder = directory.root.appendingPathComponent("public")
        try FileManager.default.createDirectory(at: publicFolder, withIntermediateDirectories: true)
        try Data(Self.manySourcesPage.utf8).write(to: publicFolder.appendingPathComponent("many.html"))
        let server = try await TestServer.start(directory, transport: transport) {
            $0.publicDirectory = publicFolder.path
        }
        defer { Task { try? await server.stop() } }
        let browser = try ChildProcess(
            Self.chromium,
            [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                "--user-data-dir=\(directory.root.appendingPathComponent("chrome").path)",
                // The browser trusts the test server's key, and nothing else it would not trust anyway.
                "--ignore-certificate-errors-spki-list=\(TestCertificate.shared.spkiHash)",
                server.url("/many.html"),
            ],
            captureOutput: false
        )
        defer { browser.stop() }
        #expect(try await eventually(40) { try await !reports(server, "state").isEmpty })
        let state = try JSONValue(parsing: try #require(try await reports(server, "state").first))
        var pinged: [String] = []
        if state["opened"] == 10 {
            _ = try await eventually(20) {
                #expect(try await server.request(.POST, "/structr/rest/ping").status == 200)
                pinged = try await reports(server, "pinged")
                return !pinged.isEmpty
            }
        }
        return (state, pinged)
    }

    @Test func overHTTP2TenEventSourcesAndRESTShareOneConnectionWhereHTTP11StallsTheSeventh() async throws {
        let h2 = try await manySources(over: .http2)
        #expect(h2.state["opened"] == 10)
        #expect(h2.state["states"] == .array(Array(repeating: 1, count: 10)))
        #expect(h2.state["probe"] == "answered 200")
        #expect(h2.pinged == ["10"])

        // Over HTTP/1.1 the browser holds six connections per origin: six sources open, the
        // seventh and later stay CONNECTING (0), and the REST call waits behind them.
        let h1 = try await manySources(over: .http1)
        #expect(h1.state["opened"] == 6)
        #expect(h1.state["states"] == .array(Array(repeating: 1, count: 6) + Array(repeating: 0, count: 4)))
        #expect(h1.state["probe"] == "pending")
    }
}
