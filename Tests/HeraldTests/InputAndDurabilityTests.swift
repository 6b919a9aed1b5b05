import Foundation
import GRDB
import HeraldSchema
import HeraldServer
import HeraldStorage
import NIOHTTP1
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Input the database cannot hold, oversized queries and batches, static files outside the
/// public folder, slow and surplus connections, a full disk, and the database's durability:
/// checkpoint at shutdown, online backup, integrity checks.
@Suite struct InputAndDurabilityTests {
    func start(
        _ directory: TestDirectory? = nil,
        _ configure: (inout HeraldConfiguration) -> Void = { _ in }
    ) async throws -> TestServer {
        try await TestServer.start(try directory ?? TestDirectory(files: projectSchema), configure: configure)
    }

    @Test func stringsWithNulAreRefusedNotCut() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let answer = try await server.request(.POST, "/structr/rest/Project", body: #"{"name": "nul-\u0000-inside"}"#)
        #expect(answer.status == 422)
        #expect(answer.json.tokens == ["must_not_contain_nul"])
        #expect(try await server.get("/structr/rest/Project").arrayValue?.isEmpty == true)
        // JSON properties keep it, escaped.
        let id = try await server.create("Project", #"{"name": "ok", "meta": {"text": "a\u0000b"}}"#)
        #expect(try await server.get("/structr/rest/Project/\(id)")["meta"]?["text"] == "a\u{0}b")
    }

    @Test func tooManyFilterValuesOrParametersAre400() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let values = (0..<5000).map { "v\($0)" }.joined(separator: ";")
        let many = try await server.request(.GET, "/structr/rest/Project?name=\(values)")
        #expect(many.status == 400)
        #expect(many.json["message"]?.stringValue?.contains("Too many filter values") == true)
        let parameters = (0..<300).map { "name=\($0)" }.joined(separator: "&")
        let wide = try await server.request(.GET, "/structr/rest/Project?\(parameters)")
        #expect(wide.status == 400)
        #expect(wide.json["message"]?.stringValue?.contains("Too many query parameters") == true)
    }

    @Test func aBatchOverTheLimitIsRefusedWhole() async throws {
        let server = try await start { $0.maxBatchSize = 10 }
        defer { Task { try? await server.stop() } }
        let batch = "[" + (0..<11).map { #"{"name": "p\#($0)"}"# }.joined(separator: ",") + "]"
        let answer = try await server.request(.POST, "/structr/rest/Project", body: batch)
        #expect(answer.status == 413)
        #expect(answer.json["message"]?.stringValue?.contains("maxBatchSize") == true)
        #expect(try await server.get("/structr/rest/Project").arrayValue?.isEmpty == true)
        let fits = "[" + (0..<10).map { #"{"name": "p\#($0)"}"# }.joined(separator: ",") + "]"
        #expect(try await server.request(.POST, "/structr/rest/Project", body: fits).status == 201)
    }

    @Test func staticFilesNeverFollowASymlinkOutOfThePublicFolder() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let publicFolder = directory.root.appendingPathComponent("public")
        try FileManager.default.createDirectory(at: publicFolder, withIntermediateDirectories: true)
        try Data("inside".utf8).write(to: publicFolder.appendingPathComponent("page.txt"))
        let secret = directory.root.appendingPathComponent("secret.txt")
        try Data("outside".utf8).write(to: secret)
        try FileManager.default.createSymbolicLink(
            at: publicFolder.appendingPathComponent("leak.txt"),
            withDestinationURL: secret
        )
        try FileManager.default.createSymbolicLink(
            at: publicFolder.appendingPathComponent("up"),
            withDestinationURL: directory.root
        )
        let server = try await start(directory) { $0.publicDirectory = publicFolder.path }
        defer { Task { try? await server.stop() } }
        #expect(try await server.request(.GET, "/page.txt", headers: [:]).text == "inside")
        for path in ["/leak.txt", "/up/secret.txt"] {
            let answer = try await server.request(.GET, path, headers: [:])
            #expect(answer.status == 404, "\(path)")
            #expect(!answer.text.contains("outside"))
        }
    }

    /// Bytes a socket receives until the server closes it, or nil if it is still open after `wait`.
    static func closed(_ socket: Int32, within wait: Duration) -> Bool {
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let deadline = ContinuousClock.now + wait
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            if recv(socket, &buffer, buffer.count, 0) <= 0 { return true }
        }
        return false
    }

    @Test func slowAndIdleConnectionsAreClosedAfterTheirTimeouts() async throws {
        let server = try await start {
            $0.headerTimeout = 1
            $0.bodyTimeout = 1
            $0.idleTimeout = 2
        }
        defer { Task { try? await server.stop() } }
        // Half a request head, then nothing.
        let header = try loopbackClient(port: server.port, request: "GET /structr/rest/Project HTTP/1.1\r\nHost: x")
        // A head announcing a body that never comes in full.
        let body = try loopbackClient(
            port: server.port,
            request: "POST /structr/rest/Project HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na"
        )
        // A connection that never sends anything.
        let idle = try loopbackClient(port: server.port, request: "")
        defer { for socket in [header, body, idle] { close(socket) } }
        #expect(try await offPool { Self.closed(header, within: .seconds(5)) })
        #expect(try await offPool { Self.closed(body, within: .seconds(5)) })
        #expect(try await offPool { Self.closed(idle, within: .seconds(6)) })
        // A healthy request still works.
        #expect(try await server.request(.GET, "/structr/rest/Project").status == 200)
    }

    @Test func connectionsPastTheLimitWaitAndTheServerKeepsServing() async throws {
        let server = try await start { $0.maxConnections = 4 }
        defer { Task { try? await server.stop() } }
        let request =
            "GET /structr/rest/Project HTTP/1.1\r\nHost: x\r\nX-User: superuser\r\nX-Password: test-secret\r\n\r\n"
        func readable(_ socket: Int32, within milliseconds: Int32) async throws -> Bool {
            try await offPool {
                var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
                return poll(&descriptor, 1, milliseconds) == 1
            }
        }
        // Keep-alive connections, each answered and held open, until one is not accepted: each
        // event loop's socket takes its share of the limit (two of four here), so the first to
        // wait comes after two to four answered ones.
        var held: [Int32] = []
        var waiting: Int32?
        for _ in 0..<12 {
            let socket = try loopbackClient(port: server.port, request: request)
            // The first is answered whatever the load; a later one that waits 3 s is not accepted.
            if try await readable(socket, within: held.isEmpty ? 20000 : 3000) {
                held.append(socket)
            } else {
                waiting = socket
                break
            }
        }
        defer { for socket in held + [waiting].compactMap({ $0 }) { close(socket) } }
        let blocked = try #require(waiting)
        #expect((2...4).contains(held.count))
        // ... and is served once the others close.
        for socket in held { close(socket) }
        held = []
        #expect(try await readable(blocked, within: 10000))
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = recv(blocked, &buffer, buffer.count, 0)
        #expect(String(decoding: buffer.prefix(max(0, count)), as: UTF8.self).hasPrefix("HTTP/1.1 200"))
    }

    @Test(.enabled(if: TestDatabase.isSQLite, "maxDatabaseSize bounds the SQLite file"))
    func aFullDatabaseAnswers507AndWritesNothing() async throws {
        let server = try await start { $0.maxDatabaseSize = 400 * 1024 }
        defer { Task { try? await server.stop() } }
        let big = String(repeating: "x", count: 200_000)
        var refused: HTTPResult?
        for index in 0..<20 {
            let answer = try await server.request(
                .POST,
                "/structr/rest/Project",
                body: #"{"name": "p\#(index)", "notes": "\#(big)"}"#
            )
            if answer.status != 201 {
                refused = answer
                break
            }
        }
        let answer = try #require(refused)
        #expect(answer.status == 507)
        #expect(answer.json["message"]?.stringValue?.contains("database is full") == true)
        // Smaller writes and reads go on.
        #expect(try await server.request(.GET, "/structr/rest/Project?_pageSize=1").status == 200)
    }

    @Test(.enabled(if: TestDatabase.isSQLite, "the SQLite file and its WAL"))
    func aCleanShutdownLeavesTheDatabaseFileComplete() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let server = try await start(directory)
        for index in 0..<20 { _ = try await server.create("Project", #"{"name": "p\#(index)"}"#) }
        try await server.stop()
        let wal = directory.data.appendingPathComponent("herald.sqlite-wal")
        let walSize = (try? FileManager.default.attributesOfItem(atPath: wal.path)[.size] as? Int) ?? 0
        #expect(walSize == 0)
        // The database file alone, copied away from its folder, holds every row.
        let copy = directory.root.appendingPathComponent("alone.sqlite")
        try FileManager.default.copyItem(at: directory.data.appendingPathComponent("herald.sqlite"), to: copy)
        let queue = try DatabaseQueue(path: copy.path)
        #expect(try await queue.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM Project") } == 20)
    }

    /// `herald check --data` on the directory's data folder.
    static func checkData(_ directory: TestDirectory) throws -> ExecutableTests.Running {
        try ExecutableTests.Running(
            arguments: ["check", "--data", directory.data.path],
            environment: [:],
            directory: directory.root,
            database: directory.database
        )
    }

    @Test(.enabled(if: TestDatabase.isSQLite, "herald backup and check --data work on the SQLite file"))
    func backupWhileRunningAndIntegrityChecks() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let server = try await start(directory)
        for index in 0..<30 { _ = try await server.create("Project", #"{"name": "p\#(index)"}"#) }
        let out = directory.root.appendingPathComponent("backup.sqlite")
        let backup = try ExecutableTests.Running(
            arguments: ["backup", "--data", directory.data.path, "--out", out.path],
            environment: [:],
            directory: directory.root,
            database: directory.database
        )
        #expect(try await backup.exitStatus() == 0)
        try await server.stop()
        let queue = try DatabaseQueue(path: out.path)
        #expect(try await queue.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM Project") } == 30)
        try queue.close()
        // Restoring is copying the backup into an empty data folder.
        let restored = try TestDirectory(files: projectSchema)
        try FileManager.default.createDirectory(at: restored.data, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: out, to: restored.data.appendingPathComponent("herald.sqlite"))
        let check = try Self.checkData(restored)
        #expect(try await check.exitStatus() == 0)
        #expect(check.log.contains("ok"))
        let again = try await start(restored)
        #expect(try await again.get("/structr/rest/Project?_pageSize=100").arrayValue?.count == 30)
        try await again.stop()

        // A damaged file: the check says so, and start-up refuses it with a clear message.
        let broken = try TestDirectory(files: projectSchema)
        try FileManager.default.createDirectory(at: broken.data, withIntermediateDirectories: true)
        var bytes = try Data(contentsOf: out)
        for offset in stride(from: 4096, to: bytes.count, by: 7) { bytes[offset] = 0xA5 }
        try bytes.write(to: broken.data.appendingPathComponent("herald.sqlite"))
        let damaged = try Self.checkData(broken)
        #expect(try await damaged.exitStatus() == 1)
        #expect(damaged.log.contains("damaged"))
        await #expect(throws: StorageError.self) { _ = try await start(broken) }
    }
}
