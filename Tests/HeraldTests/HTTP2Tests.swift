import AsyncHTTPClient
import Foundation
import HeraldHTTP
import HeraldSchema
import HeraldServer
import Logging
import NIOSSL
import Testing

/// TLS, ALPN and HTTP/2: start-up checks of the certificate, both protocols on the TLS port,
/// h2c, and streams on one HTTP/2 connection, driven by real clients (AsyncHTTPClient and
/// python3-h2, whose flow control the test decides).
@Suite struct HTTP2Tests {
    static let files: [String: String] = [
        "Item.json": #"{"properties": {"name": "string"}}"#,
        "global/flood.js":
            "{ const text = 'x'.repeat(4096); for (let i = 0; i < 20; i++) { $.broadcastEvent('flood', text, true, true); } }",
        "initial-data.json": """
        {"User": [{"name": "joe", "password": "joe-pw"}],
         "ResourceAccess": [{"signature": "_eventSource", "flags": 1}]}
        """,
    ]

    /// Runs the HTTP/2 probe and returns what it printed. It waits on a thread of its own: a
    /// thread of Swift's small shared pool, blocked, would hold up the in-process server.
    static func probe(_ arguments: [String]) async throws -> JSONValue {
        let script = repositoryRoot.appendingPathComponent("Tests/Scripts/h2probe.py").path
        let output = try await offPool { try LoadGeneratorTests.run("/usr/bin/python3", [script] + arguments) }
        guard output.status == 0 else { throw TestFailure("h2probe \(arguments) exited \(output.status)") }
        return try JSONValue(parsing: output.output)
    }

    /// The error `makeApplication` throws for these TLS settings.
    static func startUpError(certificate: String?, key: String?) async throws -> String? {
        let directory = try TestDirectory(files: files)
        var configuration = TestServer.configuration(for: directory)
        configuration.tlsCertificate = certificate
        configuration.tlsKey = key
        do {
            _ = try await HeraldServer.makeApplication(configuration: configuration, logger: Logger(label: "test"))
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// The `Set-Cookie` header of joe's login.
    static func sessionCookie(_ server: TestServer) async throws -> String {
        let login = try await server.request(
            .POST,
            "/structr/rest/login",
            body: #"{"name": "joe", "password": "joe-pw"}"#,
            headers: [:]
        )
        return try #require(login.headers["Set-Cookie"].first { $0.hasPrefix("JSESSIONID=") })
    }

    @Test func theTLSFlagsReachTheServerAndABadFileEndsItWithItsName() async throws {
        let directory = try TestDirectory(files: Self.files)
        let missing = directory.root.appendingPathComponent("nope.pem").path
        let refused = try ExecutableTests.Running(
            arguments: ["serve", "--port", "0", "--tls-cert", missing, "--tls-key", TestCertificate.shared.keyFile],
            environment: ["HERALD_SUPERUSER_PASSWORD": "pw"],
            directory: directory.root,
            database: directory.database
        )
        #expect(try await refused.exitStatus() == 1)
        #expect(refused.log.contains("\(missing) does not exist"), "\(refused.log)")
        // The environment's names work the same; the server then speaks TLS.
        let serving = try ExecutableTests.Running(
            arguments: ["serve", "--port", "0"],
            environment: [
                "HERALD_SUPERUSER_PASSWORD": "pw", "HERALD_TLS_CERT": TestCertificate.shared.certificateFile,
                "HERALD_TLS_KEY": TestCertificate.shared.keyFile,
            ],
            directory: directory.root,
            database: directory.database
        )
        let port = try await serving.port()
        #expect(serving.log.contains("protocols=https (h2, http/1.1)"))
        let answer = try await TestCertificate.client.execute(
            HTTPClientRequest(url: "https://127.0.0.1:\(port)/structr/rest/login"),
            timeout: .seconds(10)
        )
        #expect(answer.version == .http2)
        serving.process.terminate()
        #expect(try await serving.exitStatus() == 0)
    }

    @Test func aBadCertificateOrKeyStopsStartUpNamingTheFile() async throws {
        let certificate = TestCertificate.shared
        let folder = try TestDirectory(files: [:])
        let missing = folder.root.appendingPathComponent("missing.pem").path
        let garbage = folder.root.appendingPathComponent("garbage.pem").path
        try Data("not a certificate\n".utf8).write(to: URL(fileURLWithPath: garbage))
        let unreadable = folder.root.appendingPathComponent("unreadable.pem").path
        try Data([0xFF, 0xFE, 0x00, 0xC3]).write(to: URL(fileURLWithPath: unreadable))
        let otherKey = folder.root.appendingPathComponent("other.key").path
        try Data(TestCertificate.otherKeyPEM.utf8).write(to: URL(fileURLWithPath: otherKey))

        let cases: [(String?, String?, String)] = [
            (missing, certificate.keyFile, "\(missing) does not exist"),
            (certificate.certificateFile, missing, "\(missing) does not exist"),
            (garbage, certificate.keyFile, "\(garbage) holds no PEM CERTIFICATE block"),
            (unreadable, certificate.keyFile, "\(unreadable) cannot be read"),
            (certificate.certificateFile, garbage, "\(garbage) is not a PEM private key"),
            (certificate.certificateFile, otherKey, "\(otherKey) does not belong to the certificate"),
            (certificate.certificateFile, nil, "TLS needs both a certificate"),
        ]
        for (cert, key, expected) in cases {
            let error = try await Self.startUpError(certificate: cert, key: key)
            #expect(error?.contains(expected) == true, "cert \(cert ?? "-") key \(key ?? "-"): \(error ?? "started")")
        }
        #expect(try await Self.startUpError(certificate: certificate.certificateFile, key: certificate.keyFile) == nil)
    }

    @Test func theTLSPortSpeaksHTTP2AndHTTP11AndMarksCookiesSecure() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: .http2)
        defer { Task { try? await server.stop() } }
        let h2 = try await server.request(.GET, "/structr/rest/Item")
        #expect(h2.status == 200)
        #expect(h2.version == .http2)
        // Both transports answer through ApplicationResponder.
        #expect(h2.headers["Server"] == ["Herald"])
        #expect(h2.headers["Date"].count == 1)

        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(TestCertificate.shared.authorityFile)
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.httpVersion = .http1Only
        let http1 = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { Task { try? await http1.shutdown() } }
        var request = HTTPClientRequest(url: server.url("/structr/rest/Item"))
        for (name, value) in TestServer.superuser { request.headers.add(name: name, value: value) }
        let answer = try await http1.execute(request, timeout: .seconds(10))
        #expect(answer.status == .ok)
        #expect(answer.version == .http1_1)
        #expect(answer.headers["Server"] == ["Herald"])

        #expect(try await Self.sessionCookie(server).contains("; Secure"))
        // Cleartext HTTP to the TLS port gets no answer.
        await #expect(throws: (any Error).self) {
            _ = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/structr/rest/Item"),
                timeout: .seconds(5)
            )
        }
    }

    @Test func cookiesAreNotSecureWithoutTLSUnlessConfigured() async throws {
        for (secure, expected) in [(nil, false), (true, true)] as [(Bool?, Bool)] {
            let server = try await TestServer.start(try TestDirectory(files: Self.files)) { $0.secureCookies = secure }
            #expect(try await Self.sessionCookie(server).contains("; Secure") == expected)
            try await server.stop()
        }
    }

    @Test func cleartextHTTP2ServesClientsWithPriorKnowledgeNextToHTTP11() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files)) {
            $0.http2Cleartext = true
            $0.headerTimeout = 1
        }
        defer { Task { try? await server.stop() } }
        let seen = try await Self.probe(["h2c", String(server.port)])
        #expect(seen["status"] == "200")
        #expect(seen["body"]?.stringValue?.contains("\"result\"") == true)
        // The same port speaks HTTP/1.1 to everyone else.
        let http1 = try await server.request(.GET, "/structr/rest/Item")
        #expect(http1.status == 200)
        #expect(http1.version == .http1_1)
        // A connection that never says enough to tell is closed after the header timeout.
        let (_, closed) = await readUntilClosed(try loopbackClient(port: server.port, request: "PRI * HT"), seconds: 15)
        #expect(closed)
    }

    @Test func aStalledStreamHoldsBackNeitherItsNeighbourNorRESTOnTheSameConnection() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: .http2) {
            $0.eventQueueBytes = 128 * 1024
        }
        defer { Task { try? await server.stop() } }
        let seen = try await Self.probe(["stall", String(server.port), TestCertificate.shared.authorityFile])
        let published = try #require(seen["published"]?.intValue)
        #expect(published == 200)
        #expect(seen["healthy"]?.intValue == published)
        #expect(seen["healthyReset"] == false)
        // The stalled stream got what its window allowed, then the server reset it: the
        // connection and its other streams stay.
        #expect((seen["stalled"]?.intValue ?? published) < published)
        #expect(seen["stalledReset"] == true)
        #expect(seen["rest"] == .array(Array(repeating: "200", count: 10)))
        #expect(seen["afterwards"] == "200")
    }

    @Test func streamsPastTheLimitAreRefused() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: .http2) {
            $0.http2MaxConcurrentStreams = 3
        }
        defer { Task { try? await server.stop() } }
        let seen = try await Self.probe(["limit", String(server.port), TestCertificate.shared.authorityFile])
        // The limit is announced in SETTINGS, and the streams up to it open.
        #expect(seen["allowed"] == 3)
        #expect(seen["opened"] == 3)
        // A client that ignores it breaks the protocol: NIO ends the connection with GOAWAY and
        // PROTOCOL_ERROR (1), whose last stream id tells the client what was processed. The
        // extra stream never got an answer; a new connection is served.
        #expect(seen["goaway"] == 1)
        #expect(seen["extraStatus"] == .null)
        #expect(seen["again"] == "200")
    }
}
