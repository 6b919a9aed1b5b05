import AsyncHTTPClient
import Foundation
import HeraldSchema
import HeraldServer
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A temporary folder with `schema/` and `data/`, removed when released; on PostgreSQL (see
/// ``TestDatabase``) also a database of its own.
final class TestDirectory: @unchecked Sendable {
    let root: URL
    /// The directory's PostgreSQL database; nil on SQLite, whose file is in `data/`.
    let database: String?
    var schema: URL { root.appendingPathComponent("schema") }
    var data: URL { root.appendingPathComponent("data") }

    /// A folder whose schema is `files` (path → content), or the example app when `nil`.
    init(files: [String: String]? = nil) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("herald-test-\(UUID().uuidString)")
        database = try TestDatabase.create()
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        if let files {
            try FileManager.default.createDirectory(at: schema, withIntermediateDirectories: true)
            try write(files)
        } else {
            try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("schema"), to: schema)
        }
    }

    /// Writes (or replaces) schema files.
    func write(_ files: [String: String]) throws {
        for (path, content) in files {
            let url = schema.appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(),
                withIntermediateDirectories: true
            )
            try Data(content.utf8).write(to: url, options: .atomic)
        }
    }

    /// Removes a schema file.
    func remove(_ path: String) throws {
        try FileManager.default.removeItem(at: schema.appendingPathComponent(path))
    }

    deinit {
        try? FileManager.default.removeItem(at: root)
    }
}

/// The answer to a test request.
struct HTTPResult: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var text: String
    /// The HTTP version the answer came in.
    var version: HTTPVersion = .http1_1

    /// The body as JSON; fails the test's expectations with `.null` when it is not JSON.
    var json: JSONValue { (try? JSONValue(parsing: text)) ?? .null }

    /// `result` of the body.
    var result: JSONValue { json["result"] ?? .null }
}

/// A real Herald server on an ephemeral loopback port over the `TestDirectory`'s database.
final class TestServer: Sendable {
    static let superuserPassword = "test-secret"
    static let superuser = ["X-User": "superuser", "X-Password": superuserPassword]

    let directory: TestDirectory
    let port: Int
    let group: ServiceGroup
    let task: Task<Void, any Error>
    /// How the test's requests and streams reach the server.
    let transport: TestTransport

    private init(
        directory: TestDirectory,
        port: Int,
        group: ServiceGroup,
        task: Task<Void, any Error>,
        transport: TestTransport = .http1
    ) {
        self.directory = directory
        self.port = port
        self.group = group
        self.task = task
        self.transport = transport
    }

    /// `path` on this server, over its transport.
    func url(_ path: String) -> String { "\(transport.scheme)://127.0.0.1:\(port)\(path)" }

    static func configuration(for directory: TestDirectory) -> HeraldConfiguration {
        var configuration = HeraldConfiguration()
        configuration.schemaDirectory = directory.schema.path
        configuration.dataDirectory = directory.data.path
        configuration.database = directory.database
        configuration.port = 0
        configuration.superuserPassword = superuserPassword
        configuration.bcryptCost = 4
        configuration.logLevel = .error
        return configuration
    }

    /// Starts a server on `directory` and waits until it listens; over HTTP/2 it serves TLS
    /// with the tests' certificate.
    static func start(
        _ directory: TestDirectory,
        transport: TestTransport = .http1,
        configure: (inout HeraldConfiguration) -> Void = { _ in }
    ) async throws -> TestServer {
        var configuration = configuration(for: directory)
        if transport == .http2 {
            configuration.tlsCertificate = TestCertificate.shared.certificateFile
            configuration.tlsKey = TestCertificate.shared.keyFile
        }
        configure(&configuration)
        var logger = Logger(label: "herald.test")
        logger.logLevel = configuration.logLevel
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = try await HeraldServer.makeApplication(configuration: configuration, logger: logger) { port in
            continuation.yield(port)
            continuation.finish()
        }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            task.cancel()
            throw TestFailure("server did not start")
        }
        return TestServer(directory: directory, port: port, group: group, task: task, transport: transport)
    }

    /// A handle on a server running in another process (the `herald` binary) on `port`, for its
    /// request helpers; it does not own the server.
    static func attach(_ directory: TestDirectory, port: Int) throws -> TestServer {
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [ServiceGroupConfiguration.ServiceConfiguration](),
                logger: Logger(label: "herald.test")
            )
        )
        return TestServer(directory: directory, port: port, group: group, task: Task {})
    }

    /// Shuts down gracefully and waits until storage is closed.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }

    /// Sends a request and collects the whole answer.
    func request(
        _ method: HTTPMethod,
        _ path: String,
        body: String? = nil,
        headers: [String: String] = TestServer.superuser
    ) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: url(path))
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await transport.client.execute(request, timeout: .seconds(30))
        } catch let error as ChannelError where error == .ioOnClosedChannel && [.GET, .HEAD].contains(method) {
            // The pool sent it on a connection the server was closing (a stream's, which closes
            // as its response ends): HTTP/1.1 lets a client send an idempotent request again
            // (RFC 9112, 9.3.1), as browsers do.
            response = try await transport.client.execute(request, timeout: .seconds(30))
        }
        let buffer = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return HTTPResult(
            status: Int(response.status.code),
            headers: response.headers,
            text: String(buffer: buffer),
            version: response.version
        )
    }

    /// POSTs `json` to the type and returns the new id; fails unless the answer is 201.
    func create(_ type: String, _ json: String) async throws -> String {
        let answer = try await request(.POST, "/structr/rest/\(type)", body: json)
        guard answer.status == 201, let id = answer.result.arrayValue?.first?.stringValue else {
            throw TestFailure("create \(type) failed: \(answer.status) \(answer.text)")
        }
        return id
    }

    /// Logs in and returns the session id from the `JSESSIONID` cookie.
    func login(_ name: String, _ password: String) async throws -> String {
        let answer = try await request(
            .POST,
            "/structr/rest/login",
            body: #"{"name": "\#(name)", "password": "\#(password)"}"#,
            headers: [:]
        )
        guard let cookie = answer.headers["Set-Cookie"].first(where: { $0.hasPrefix("JSESSIONID=") }),
            let pair = cookie.split(separator: ";").first
        else { throw TestFailure("login as \(name) failed: \(answer.status) \(answer.text)") }
        return String(pair.dropFirst("JSESSIONID=".count))
    }

    /// The `result` of a GET; fails unless the answer is 200.
    func get(_ path: String) async throws -> JSONValue {
        let answer = try await request(.GET, path)
        guard answer.status == 200 else { throw TestFailure("GET \(path) failed: \(answer.status) \(answer.text)") }
        return answer.result
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension JSONValue {
    /// The ids of an array of objects.
    var ids: [String] { (arrayValue ?? []).compactMap { $0["id"]?.stringValue } }

    /// Field lookup through arrays of error objects: the tokens of `errors`.
    var tokens: [String] { (self["errors"]?.arrayValue ?? []).compactMap { $0["token"]?.stringValue } }
}
