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

    func reports(_ server: TestServer, _ stage: String) async throws -> [String] {
        let list = try await server.get("/structr/rest/Report?stage=\(stage)&_sort=createdDate")
        return (list.arrayValue ?? []).compactMap { $0["detail"]?.stringValue }
    }

    @Test func aCommentNotifiesThePostsAuthorInTheBrowserAndNothingIsLostAcrossADroppedStream() async throws {
        let directory = try TestDirectory()
        try directory.write([
            "Report.json": #"{"properties": {"stage": "string", "detail": "string"}}"#,
            "global/report.js": "{ $.create('Report', {stage: $.arguments.stage, detail: $.arguments.detail}); }",
        ])
        let publicFolder = directory.root.appendingPathComponent("public")
        try FileManager.default.createDirectory(at: publicFolder, withIntermediateDirectories: true)
        try Data(Self.page.utf8).write(to: publicFolder.appendingPathComponent("test.html"))
        let configure: (inout HeraldServerConfiguration) -> Void = {
            $0.publicDirectory = publicFolder.path
            $0.eventSourceRetry = 1500
        }
        var server = try await TestServer.start(directory, configure: configure)
        _ = try await server.create("ResourceAccess", #"{"signature": "report", "flags": 4}"#)

        let browser = Process()
        browser.executableURL = URL(fileURLWithPath: Self.chromium)
        browser.arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--user-data-dir=\(directory.root.appendingPathComponent("chrome").path)",
            "http://127.0.0.1:\(server.port)/test.html",
        ]
        browser.standardOutput = FileHandle.nullDevice
        browser.standardError = FileHandle.nullDevice
        try browser.run()
        defer { browser.terminate() }

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
}
