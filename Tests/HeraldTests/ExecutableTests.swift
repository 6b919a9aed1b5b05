import AsyncHTTPClient
import Foundation
import HeraldSchema
import NIOCore
import NIOHTTP1
import Testing

/// Runs the real `herald` binary: configuration layering, start-up errors and SIGTERM.
@Suite struct ExecutableTests {
    /// The binary `scripts/test` built (HERALD_BINARY), or the debug build next to the sources.
    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["HERALD_BINARY"] { return URL(fileURLWithPath: path) }
        return repositoryRoot.appendingPathComponent(".build/debug/herald")
    }

    /// A running `herald` process and what it printed.
    final class Running: @unchecked Sendable {
        let process: ChildProcess
        private let text: NSLockedText

        /// - Parameter database: the test directory's PostgreSQL database, when the suite runs on it.
        init(
            arguments: [String],
            environment: [String: String],
            directory: URL,
            database: String? = nil,
            executable: URL? = nil
        ) throws {
            var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HERALD_") }
            env.merge(environment) { _, new in new }
            if let database { env["HERALD_DATABASE"] = database }
            let text = NSLockedText()
            self.text = text
            process = try ChildProcess(
                (executable ?? ExecutableTests.binary).path,
                arguments,
                environment: env,
                directory: directory.path
            ) { text.append(String(decoding: $0, as: UTF8.self)) }
        }

        var log: String { text.value }

        /// The port from the "Herald listening" line, once it appears.
        func port(timeout: Duration = .seconds(60)) async throws -> Int {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if let line = log.split(separator: "\n").first(where: { $0.contains("Herald listening") }),
                    let range = line.range(of: "port="),
                    let port = Int(line[range.upperBound...].prefix { $0.isNumber })
                {
                    return port
                }
                if !process.isRunning { throw TestFailure("herald exited early:\n\(log)") }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw TestFailure("herald did not start:\n\(log)")
        }

        /// Waits for the process to end and returns its exit status.
        func exitStatus(timeout: Duration = .seconds(30)) async throws -> Int32 {
            let deadline = ContinuousClock.now + timeout
            while process.isRunning {
                if ContinuousClock.now > deadline {
                    process.terminate()
                    throw TestFailure("herald did not exit:\n\(log)")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            // Exited: wait until its output is read to the end, so `log` holds all of it (a
            // check-data run was seen exiting 0 with its "ok" still unread).
            let process = self.process
            return try await offPool { process.waitUntilExit() }
        }
    }

    /// Text appended from one thread and read from others.
    final class NSLockedText: @unchecked Sendable {
        private let lock = NSLock()
        private var text = ""
        var value: String { lock.withLock { text } }
        func append(_ more: String) { lock.withLock { text += more } }
    }

    func send(_ method: HTTPMethod, port: Int, _ path: String, body: String? = nil, password: String) async throws -> (
        Int, JSONValue
    ) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        request.headers.add(name: "X-User", value: "superuser")
        request.headers.add(name: "X-Password", value: password)
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), (try? JSONValue(parsing: buffer.readableBytesView)) ?? .null)
    }

    @Test func layersFlagsOverEnvironmentOverConfigFileAndStopsCleanlyOnSIGTERM() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let config = directory.root.appendingPathComponent("herald.json")
        try Data(#"{"port": 1, "bcryptCost": 4, "superuser": {"password": "from-file"}, "data": "file-data"}"#.utf8)
            .write(to: config)

        // The file names the data folder and the password; the environment overrides the
        // password, and the command line overrides the port.
        let first = try Running(
            arguments: ["serve", "--schema", "schema", "--port", "0"],
            environment: ["HERALD_SUPERUSER_PASSWORD": "from-env", "HERALD_PORT": "2"],
            directory: directory.root,
            database: directory.database
        )
        let port = try await first.port()
        #expect(try await send(.GET, port: port, "/structr/rest/Tag", password: "from-file").0 == 401)
        let (status, body) = try await send(
            .POST,
            port: port,
            "/structr/rest/Tag",
            body: #"{"name": "kept"}"#,
            password: "from-env"
        )
        #expect(status == 201)
        let id = try #require(body["result"]?.arrayValue?.first?.stringValue as String?)
        // The data folder holds the SQLite file (PostgreSQL keeps everything in the database).
        if TestDatabase.isSQLite {
            #expect(
                FileManager.default.fileExists(
                    atPath: directory.root.appendingPathComponent("file-data/herald.sqlite").path
                )
            )
        }
        first.process.interrupt()  // SIGINT
        #expect(try await first.exitStatus() == 0)
        #expect(first.log.contains("storage closed"))

        let second = try Running(
            arguments: ["serve", "--schema", "schema", "--port", "0", "--config", config.path],
            environment: ["HERALD_SUPERUSER_PASSWORD": "from-env"],
            directory: directory.root,
            database: directory.database
        )
        let port2 = try await second.port()
        #expect(
            try await send(.GET, port: port2, "/structr/rest/Tag/\(id)", password: "from-env").1["result"]?["name"]
                == "kept"
        )
        second.process.terminate()  // SIGTERM
        #expect(try await second.exitStatus() == 0)
    }

    @Test func sigtermEndsTheProcessWithinTheShutdownTimeoutWhateverScriptsDo() async throws {
        let directory = try TestDirectory(
            files: projectSchema.merging(["global/spin.js": "{ $.log('spin started'); for (;;) {} }"]) { $1 }
        )
        let running = try Running(
            arguments: ["serve", "--schema", "schema", "--port", "0", "--data", "data"],
            environment: [
                "HERALD_SUPERUSER_PASSWORD": "pw", "HERALD_SCRIPT_TIME_LIMIT": "120000",
                "HERALD_SHUTDOWN_TIMEOUT": "2", "HERALD_BCRYPT_COST": "4",
            ],
            directory: directory.root,
            database: directory.database
        )
        let port = try await running.port()
        let spinning = Task { try? await send(.POST, port: port, "/structr/rest/spin", body: "{}", password: "pw") }
        // Once the script runs (not merely sent: on a loaded machine that takes a while).
        #expect(try await eventually(20) { running.log.contains("spin started") })
        let stopped = ContinuousClock.now
        running.process.terminate()  // SIGTERM, while the script spins with two minutes to go
        #expect(try await running.exitStatus(timeout: .seconds(15)) == 1)
        #expect(ContinuousClock.now - stopped < .seconds(8))
        #expect(running.log.contains("shutdownTimeout"))
        spinning.cancel()
    }

    @Test func aConnectionFloodPastTheOpenFileLimitLeavesTheServerWorking() async throws {
        let directory = try TestDirectory(files: projectSchema)
        // 256 open files: the server serves at most 192 connections and keeps the rest.
        let running = try Running(
            arguments: [
                "-c", "ulimit -n 256 && exec \"$0\" serve --schema schema --port 0 --data data", Self.binary.path,
            ],
            environment: [
                "HERALD_SUPERUSER_PASSWORD": "pw", "HERALD_BCRYPT_COST": "4", "HERALD_SCHEMA_RELOAD_INTERVAL": "100",
            ],
            directory: directory.root,
            database: directory.database,
            executable: URL(fileURLWithPath: "/bin/sh")
        )
        let port = try await running.port()
        #expect(running.log.contains("maxConnections lowered"))
        var sockets: [Int32] = []
        for _ in 0..<600 {
            guard let socket = try? loopbackClient(port: port, request: "GET /structr/rest/Tag HTTP/1.1\r\n") else {
                break
            }
            sockets.append(socket)
        }
        // While the flood holds every connection it may, the schema reloader still opens files.
        try directory.write(["Note.json": #"{"properties": {"text": "string"}}"#])
        try await Task.sleep(for: .seconds(2))
        for socket in sockets { close(socket) }
        #expect(running.process.isRunning)
        #expect(!running.log.contains("Too many open files"), "\(running.log.suffix(2000))")
        var reloaded = false
        for _ in 0..<50 where !reloaded {
            reloaded = (try? await send(.GET, port: port, "/structr/rest/Note", password: "pw").0) == 200
            if !reloaded { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(reloaded, "\(running.log.suffix(2000))")
        running.process.terminate()
        #expect(try await running.exitStatus() == 0)
    }

    @Test func warnsWithoutASuperuserPassword() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let running = try Running(
            arguments: ["serve", "--port", "0", "--data", "data"],
            environment: [:],
            directory: directory.root,
            database: directory.database
        )
        let port = try await running.port()
        #expect(running.log.contains("no superuser password set"))
        #expect(try await send(.GET, port: port, "/structr/rest/Tag", password: "").0 == 401)
        running.process.terminate()
        #expect(try await running.exitStatus() == 0)
    }

    @Test func aBrokenSchemaStopsStartUpNamingFileAndField() async throws {
        let directory = try TestDirectory(files: ["Item.json": #"{"properties": {"count": {"type": "int"}}}"#])
        let running = try Running(
            arguments: ["serve", "--port", "0"],
            environment: [:],
            directory: directory.root,
            database: directory.database
        )
        #expect(try await running.exitStatus() == 1)
        #expect(running.log.contains("Item.json: properties.count.type: unknown property type 'int'"))
    }

    @Test func aNegativeSocketUnsentBytesInTheConfigFileStopsStartUpNamingTheKey() async throws {
        let directory = try TestDirectory(files: projectSchema)
        try Data(#"{"eventSource": {"socketUnsentBytes": -1}}"#.utf8)
            .write(to: directory.root.appendingPathComponent("herald.json"))
        let running = try Running(
            arguments: ["serve", "--schema", "schema", "--port", "0", "--data", "data"],
            environment: [:],
            directory: directory.root,
            database: directory.database
        )
        #expect(try await running.exitStatus() == 1)
        #expect(running.log.contains("eventSource.socketUnsentBytes must not be negative"))
    }

    @Test func checkListsTheSchema() async throws {
        let running = try Running(
            arguments: ["check", "--schema", "schema"],
            environment: [:],
            directory: repositoryRoot
        )
        #expect(try await running.exitStatus() == 0)
        let listing = try JSONValue(parsing: running.log)
        #expect((listing["types"]?.arrayValue ?? []).contains { $0["name"] == "Comment" })
    }
}
