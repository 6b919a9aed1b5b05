import Foundation
import HeraldSchema
import Testing

/// The generated client: `herald generate typescript`, checked by Debian's `tsc`, and the same
/// module as plain JavaScript at `/structr/client.js`, run in Chromium.
@Suite struct ClientModuleTests {
    static let tsc = "/usr/bin/tsc"

    /// A use of the example app's client that must compile under `--strict`.
    static let goodUse = """
        import { HeraldClient, HeraldError, Post, Comment } from './herald';
        const client = new HeraldClient({ headers: { 'X-User': 'alice', 'X-Password': 'herald-demo' } });
        export async function main(): Promise<void> {
          const posts = await client.Post.list({ filters: { title: 'Hello' }, sort: 'priority', order: 'desc', pageSize: 5 });
          const first: Post = posts.result[0];
          const status: 'draft' | 'published' | null = first.status;
          const id: string = await client.Post.create({ title: 'New', status: 'draft', author: first.id });
          const updated: Post = await client.Post.update(id, { priority: 3, author: { id: first.id } });
          const comments = await client.Post.comments(id, { pageSize: 10 });
          await client.Document.startEditing('d0c00000000000000000000000000b01');
          await client.processDataItems({});
          const me = await client.login('alice', 'herald-demo');
          const events = client.events({ channels: ['news', `post:${id}`, 'team:Engineering'], lastEventId: 3 });
          const stop = events.on('notification', (n) => { const preview: string = n.preview; console.log(n.postId, preview); });
          events.on('progress', (p) => console.log(p.percent + 1, p.taskId.length));
          events.on('editing', (e) => { const action: 'started' | 'stopped' = e.action; console.log(action); });
          events.onUntyped('anything', (payload) => console.log(payload));
          stop();
          const live = client.Comment.live({ filters: { text: 'x' } });
          live.onChange((change) => { const items: Comment[] = live.items; console.log(change.kind, items.length); });
          try { await client.Post.delete(id); } catch (e) { if (e instanceof HeraldError) console.log(e.status, e.errors); }
          console.log(status, updated.priority, comments.result_count, me.name, live.items);
        }
        """

    /// Wrong uses, each with the error `tsc` must report.
    static let wrongUses: [(String, String)] = [
        ("client.Post.create({})", "Property 'title' is missing"),
        ("client.Post.update('x', { priority: 'high' })", "TS2322"),
        ("client.Post.list({ sort: 'nope' })", "TS2322"),
        ("client.Post.list({ filters: { nope: 'x' } })", "'nope' does not exist"),
        ("client.events().on('notification', (n) => n.nope)", "Property 'nope' does not exist"),
        ("client.events().on('undeclared', () => {})", "TS2345"),
        ("client.events({ channels: ['secret'] })", "not assignable to type 'ChannelName'"),
        ("client.Nope.list()", "Property 'Nope' does not exist"),
        ("client.Document.startEditing(42)", "TS2345"),
    ]

    /// Runs `tsc --strict` once over `files` (name → source) in `folder`.
    func typeCheck(_ folder: URL, _ files: [String: String]) throws -> (status: Int32, output: String) {
        for (file, source) in files { try Data(source.utf8).write(to: folder.appendingPathComponent(file)) }
        let process = try ChildProcess(
            Self.tsc,
            [
                "--strict", "--noEmit", "--target", "es2022", "--module", "es2022", "--moduleResolution", "node",
                "--lib", "es2022,dom",
            ] + files.keys.sorted(),
            directory: folder.path
        )
        let status = process.waitUntilExit()
        return (status, String(decoding: process.output, as: UTF8.self))
    }

    @Test func theGeneratedModuleTypeChecksAndWrongUsesDoNot() async throws {
        let scratch = try TestDirectory(files: [:])
        let folder = scratch.root
        let generated = try LoadGeneratorTests.run(
            ExecutableTests.binary.path,
            [
                "generate", "typescript", "--schema", repositoryRoot.appendingPathComponent("schema").path,
                "--out", folder.appendingPathComponent("herald.ts").path,
            ]
        )
        #expect(generated.status == 0, "\(generated.output)")
        let module = try String(contentsOf: folder.appendingPathComponent("herald.ts"), encoding: .utf8)
        #expect(module.contains("export interface Post extends SystemProperties"))
        #expect(module.contains("\"notification\": {"))
        #expect(module.contains("`post:${string}`"))

        let good = try await offPool { try typeCheck(folder, ["use.ts": Self.goodUse]) }
        #expect(good.status == 0, "\(good.output)")
        // One tsc run over a file per wrong use: each file must have its own error.
        var wrong: [String: String] = [:]
        for (index, (use, _)) in Self.wrongUses.enumerated() {
            wrong["wrong\(index).ts"] =
                "import { HeraldClient } from './herald';\nconst client = new HeraldClient();\n\(use);\n"
        }
        let wrongFiles = wrong
        let bad = try await offPool { try typeCheck(folder, wrongFiles) }
        #expect(bad.status != 0)
        let lines = bad.output.split(separator: "\n")
        for (index, (use, error)) in Self.wrongUses.enumerated() {
            // An error's first line names its file; its text may go on in the next lines.
            let start = lines.firstIndex { $0.hasPrefix("wrong\(index).ts(") }
            let text = start.map { lines[$0...].prefix(3).joined(separator: "\n") } ?? ""
            #expect(start != nil, "\(use) compiled")
            #expect(text.contains(error), "\(use): \(text)")
        }
    }

    @Test func theServerServesTheSameModuleAndFollowsReloads() async throws {
        let directory = try TestDirectory()
        let server = try await TestServer.start(directory) { $0.schemaReloadInterval = 100 }
        defer { Task { try? await server.stop() } }
        let served = try await server.request(.GET, "/structr/client.ts", headers: [:])
        #expect(served.status == 200)
        let scratch = try TestDirectory(files: [:])
        let out = scratch.root.appendingPathComponent("herald.ts").path
        let generated = try LoadGeneratorTests.run(
            ExecutableTests.binary.path,
            ["generate", "typescript", "--schema", directory.schema.path, "--out", out]
        )
        #expect(generated.status == 0)
        #expect(served.text == (try String(contentsOfFile: out, encoding: .utf8)))

        let javaScript = try await server.request(.GET, "/structr/client.js", headers: [:])
        #expect(javaScript.headers["Content-Type"].first == "text/javascript; charset=utf-8")
        #expect(!javaScript.text.contains("interface ") && javaScript.text.contains("export class HeraldClient"))

        try directory.write(["Tag.json": #"{"properties": {"label": "string"}}"#])
        #expect(
            try await eventually(20) {
                try await server.request(.GET, "/structr/client.js", headers: [:]).text.contains("  Tag = {")
            }
        )
    }

    @Test func aBadSchemaFolderIsReportedWithItsFileAndNothingIsWritten() throws {
        let directory = try TestDirectory(files: ["events.json": #"{"a": {"schema": {"type": "text"}}}"#])
        let out = directory.root.appendingPathComponent("out.ts").path
        let result = try LoadGeneratorTests.run(
            ExecutableTests.binary.path,
            ["generate", "typescript", "--schema", directory.schema.path, "--out", out]
        )
        #expect(result.status == 1)
        #expect(result.output.contains("events.json: a.schema.type"), "\(result.output)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}

extension BrowserTests {
    /// A page using the served JavaScript client: log in, follow a post's channel, create a
    /// comment, and see a refused create as a `HeraldError`.
    static let clientPage = """
        <!doctype html>
        <meta charset="utf-8">
        <script type="module">
        import { HeraldClient, HeraldError } from '/structr/client.js';
        const client = new HeraldClient();
        const report = (stage, detail) => client.report({ stage, detail });
        const me = await client.login('carol', 'herald-demo');
        await report('login', me.name);
        const posts = await client.Post.list({ filters: { title: 'hello' }, inexact: true });
        await report('posts', String(posts.result.length));
        const post = posts.result[0].id;
        const events = client.events({ channels: ['post:' + post] });
        events.on('comment', (comment) => report('comment', JSON.stringify(comment)));
        let seen = false;
        events.on('comment', () => { seen = true; });
        events.source.onopen = async () => {
          // The browser calls a stream open when its head arrives, a moment before the server
          // has it subscribed: comment until one comes back on the channel.
          for (let attempt = 0; !seen && attempt < 20; attempt++) {
            await client.Comment.create({ text: 'From the client', post, author: me.id });
            await new Promise((resolve) => setTimeout(resolve, 500));
          }
          try {
            await client.Comment.create({});
          } catch (error) {
            await report('refused', String(error instanceof HeraldError) + ' ' + error.status + ' ' + error.errors[0]?.token);
          }
        };
        </script>
        """

    @Test func theServedJavaScriptClientWorksInChromium() async throws {
        let (directory, publicFolder) = try Self.exampleApp(serving: Self.clientPage, as: "client.html")
        let server = try await TestServer.start(directory) { $0.publicDirectory = publicFolder.path }
        defer { Task { try? await server.stop() } }
        _ = try await server.create("ResourceAccess", #"{"signature": "report", "flags": 4}"#)
        let browser = try Self.headlessChromium(directory, server.url("/client.html"))
        defer { browser.stop() }
        #expect(try await eventually(30) { try await !reports(server, "comment").isEmpty })
        #expect(try await reports(server, "login") == ["carol"])
        #expect(try await reports(server, "posts") == ["1"])
        let comment = try JSONValue(parsing: try #require(try await reports(server, "comment").first))
        #expect(comment["text"] == "From the client" && comment["authorName"] == "carol")
        #expect(try await eventually(10) { try await reports(server, "refused") == ["true 422 must_not_be_empty"] })
    }
}
