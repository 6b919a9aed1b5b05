import AsyncHTTPClient
import Foundation
import HeraldSchema
import NIOCore
import NIOHTTP1
import Testing

/// A streaming client of the EventSource endpoint: it keeps everything the server sent so far.
final class EventStream: @unchecked Sendable {
    let status: Int
    let headers: HTTPHeaders
    /// The HTTP version the stream came in.
    let version: HTTPVersion
    private let lock = NSLock()
    private var received = ""
    private var ended = false
    private var tail = ""
    private var eventLines = 0
    private var reader: Task<Void, Never>?

    /// Whether to keep the whole text (tests that only count events may not want 40 MB of it).
    let keepsText: Bool

    /// The number of events received so far.
    var eventCount: Int { lock.withLock { eventLines } }

    init(
        _ server: TestServer,
        headers: [String: String],
        path: String = "/structr/EventSource",
        keepsText: Bool = true
    ) async throws {
        self.keepsText = keepsText
        var request = HTTPClientRequest(url: server.url(path))
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await server.transport.client.execute(request, timeout: .seconds(120))
        status = Int(response.status.code)
        self.headers = response.headers
        version = response.version
        reader = Task { [weak self] in
            do {
                for try await chunk in response.body {
                    guard let self else { return }
                    let text = String(buffer: chunk)
                    self.lock.withLock {
                        // Count "event:" lines incrementally; a line may straddle two chunks.
                        let window = self.tail + text
                        self.eventLines += window.components(separatedBy: "\nevent: ").count - 1
                        self.tail = String(window.suffix(8))
                        if self.keepsText { self.received += text }
                    }
                }
            } catch {}
            self?.lock.withLock { self?.ended = true }
        }
    }

    var text: String { lock.withLock { received } }
    var isEnded: Bool { lock.withLock { ended } }

    /// Waits until the stream holds `substring`.
    func waitFor(_ substring: String, seconds: Double = 15) async throws -> Bool {
        try await eventually(seconds) { self.text.contains(substring) }
    }

    func close() { reader?.cancel() }
}

/// The `id:` values of a stream's text, in order.
func eventIDs(_ text: String) -> [UInt64] {
    text.split(separator: "\n").filter { $0.hasPrefix("id: ") }.compactMap { UInt64($0.dropFirst(4)) }
}

@Suite struct EventSourceTests {
    static let files: [String: String] = [
        "Item.json": #"{"properties": {"name": "string"}}"#,
        "global/greet.js": "{ $.broadcastEvent('greeting', 'hello\\nworld', true, true); }",
        "global/ping.js":
            "{ return $.sendEvent('ping', 'for ' + $.arguments.to, $.find('User', 'name', $.arguments.to)); }",
        "initial-data.json": """
        {"User": [{"name": "root", "password": "root-pw", "isAdmin": true},
                  {"name": "joe", "password": "joe-pw"}, {"name": "ann", "password": "ann-pw"}],
         "ResourceAccess": [{"signature": "_eventSource", "flags": 1}]}
        """,
    ]

    static let root = ["X-User": "root", "X-Password": "root-pw"]

    @Test(arguments: TestTransport.allCases) func opensWithItsHeadersAndRetryAtOnceThenDeliversFramedEvents(
        transport: TestTransport
    ) async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: transport)
        defer { Task { try? await server.stop() } }
        let stream = try await EventStream(server, headers: Self.root.merging(["Accept": "text/event-stream"]) { $1 })
        defer { stream.close() }
        #expect(stream.status == 200)
        #expect(stream.version == (transport == .http2 ? .http2 : .http1_1))
        #expect(stream.headers["Content-Type"].first == "text/event-stream; charset=utf-8")
        #expect(stream.headers["Cache-Control"].first == "no-cache")
        #expect(stream.headers["X-Accel-Buffering"].first == "no")
        #expect(try await stream.waitFor("retry: 3000\n\n"))
        #expect(stream.text.hasPrefix("retry: 3000\n\n"))
        #expect(try await server.request(.POST, "/structr/rest/greet").status == 200)
        #expect(try await stream.waitFor("event: greeting\ndata: hello\ndata: world\n\n"))
        let idLine = stream.text.split(separator: "\n").first { $0.hasPrefix("id: ") }
        #expect(idLine.flatMap { UInt64($0.dropFirst(4)) } != nil)
    }

    @Test(arguments: TestTransport.allCases) func sendEventReachesOnlyItsUsersStreams(transport: TestTransport)
        async throws
    {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: transport)
        defer { Task { try? await server.stop() } }
        let token = try await server.login("joe", "joe-pw")
        let joe = try await EventStream(server, headers: ["Cookie": "JSESSIONID=\(token)"])
        let ann = try await EventStream(server, headers: ["X-User": "ann", "X-Password": "ann-pw"])
        defer {
            joe.close()
            ann.close()
        }
        #expect(joe.status == 200)
        #expect(try await joe.waitFor("retry:"))
        #expect(try await ann.waitFor("retry:"))
        #expect(try await server.request(.POST, "/structr/rest/ping", body: #"{"to": "joe"}"#).result == true)
        #expect(try await joe.waitFor("event: ping\ndata: for joe"))
        try await Task.sleep(for: .milliseconds(200))
        #expect(!ann.text.contains("event: ping"))
        #expect(try await server.request(.POST, "/structr/rest/ping", body: #"{"to": "root"}"#).result == false)
    }

    @Test(arguments: TestTransport.allCases) func grantsAndAcceptDecideWhoGetsAStream(transport: TestTransport)
        async throws
    {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: transport)
        defer { Task { try? await server.stop() } }
        let anonymous = try await server.request(.GET, "/structr/EventSource", headers: [:])
        #expect(anonymous.status == 401)
        #expect(anonymous.json["message"] == "Access denied")
        let json = try await server.request(
            .GET,
            "/structr/EventSource",
            headers: Self.root.merging(["Accept": "application/json"]) { $1 }
        )
        #expect(json.status == 406)
        for refused in ["text/event-stream;q=0", "text/event-stream; q=0.0, */*", "text/*;q=0", "*/*;q=0"] {
            let answer = try await server.request(
                .GET,
                "/structr/EventSource",
                headers: Self.root.merging(["Accept": refused]) { $1 }
            )
            #expect(answer.status == 406, "Accept: \(refused)")
        }
        for accept in [
            "text/html, text/event-stream;q=0.9", "text/event-stream; charset=utf-8", "", "*/*;q=0.1",
            "text/event-stream;q=0.5, */*;q=0",
        ] {
            let stream = try await EventStream(server, headers: Self.root.merging(["Accept": accept]) { $1 })
            #expect(stream.status == 200, "Accept: \(accept)")
            stream.close()
        }
    }

    @Test(arguments: TestTransport.allCases) func idleStreamsGetHeartbeats(transport: TestTransport) async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: transport) {
            $0.eventSourceHeartbeat = 200
        }
        defer { Task { try? await server.stop() } }
        let stream = try await EventStream(server, headers: Self.root)
        defer { stream.close() }
        // A loaded machine (every suite starting at once) has been seen to hold the loops for
        // seconds; a 200 ms heartbeat still has to come.
        #expect(try await stream.waitFor(": heartbeat\n\n", seconds: 15))
    }

    @Test func streamsThatEndLeaveTheOthersTheirHeartbeats() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files)) {
            $0.eventSourceHeartbeat = 300
        }
        defer { Task { try? await server.stop() } }
        // One task per event loop ticks all its streams; ending some moves others in its list.
        var streams: [EventStream] = []
        for _ in 0..<8 { streams.append(try await EventStream(server, headers: Self.root)) }
        defer { for stream in streams { stream.close() } }
        for index in [0, 3, 4, 7] { streams[index].close() }
        let kept = [1, 2, 5, 6].map { streams[$0] }
        let marks = kept.map { $0.text.components(separatedBy: ": heartbeat").count }
        for (stream, mark) in zip(kept, marks) {
            #expect(try await eventually(15) { stream.text.components(separatedBy: ": heartbeat").count > mark + 1 })
        }
        // A stream opened after the others ended, and after every stream of a loop may have
        // ended, is ticked too.
        for stream in kept { stream.close() }
        try await Task.sleep(for: .milliseconds(200))
        let late = try await EventStream(server, headers: Self.root)
        defer { late.close() }
        #expect(try await late.waitFor(": heartbeat\n\n", seconds: 15))
    }

    @Test func theFirstHeartbeatComesOnePeriodAfterTheStreamOpens() async throws {
        // Server and client each in a process of their own: the in-process servers and the HTTP
        // client of other suites share event loops that heavy tests keep busy, which would delay
        // the timer or the reading of either end.
        let directory = try TestDirectory(files: Self.files)
        try #"{"eventSource": {"heartbeat": 2000}}"#.write(
            to: directory.root.appendingPathComponent("herald.json"),
            atomically: true,
            encoding: .utf8
        )
        let running = try ExecutableTests.Running(
            arguments: ["serve", "--schema", "schema", "--port", "0", "--data", "data"],
            environment: ["HERALD_SUPERUSER_PASSWORD": TestServer.superuserPassword, "HERALD_BCRYPT_COST": "4"],
            directory: directory.root,
            database: directory.database
        )
        let port = try await running.port()
        // Python's http.client reads the stream and prints the milliseconds from the opening
        // `retry:` to the first heartbeat.
        let client = """
            import http.client, sys, time
            c = http.client.HTTPConnection('127.0.0.1', \(port), timeout=10)
            c.request('GET', '/structr/EventSource', headers={'X-User': 'superuser', 'X-Password': '\(TestServer.superuserPassword)'})
            r = c.getresponse()
            opened = None
            while True:
                line = r.fp.readline().decode()
                if line.startswith('retry:') and opened is None: opened = time.monotonic()
                if line.startswith(': heartbeat'):
                    print(int((time.monotonic() - opened) * 1000)); break
            """
        let python = try ChildProcess("/usr/bin/python3", ["-c", client])
        let milliseconds = try await offPool {
            python.waitUntilExit()
            return Int(String(decoding: python.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        running.process.terminate()
        _ = try await running.exitStatus()
        let after = try #require(milliseconds)
        // Ticks every half period: the heartbeat was due at 2 s; one tick late would be 3 s.
        #expect(after >= 1800 && after < 2700, "first heartbeat after \(after) ms")
    }

    @Test(arguments: TestTransport.allCases) func logoutClosesThatSessionsStreams(transport: TestTransport) async throws
    {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: transport)
        defer { Task { try? await server.stop() } }
        let token = try await server.login("joe", "joe-pw")
        let stream = try await EventStream(server, headers: ["Cookie": "JSESSIONID=\(token)"])
        let other = try await EventStream(server, headers: Self.root)
        defer { other.close() }
        #expect(try await stream.waitFor("retry:"))
        #expect(
            try await server.request(.POST, "/structr/rest/logout", headers: ["Cookie": "JSESSIONID=\(token)"]).status
                == 200
        )
        #expect(try await eventually(5) { stream.isEnded })
        #expect(!other.isEnded)
    }

    /// Root's stream on a raw socket, with `headers` (CRLF-ended lines) in the request, once its
    /// `retry:` came. The caller stops the reader.
    static func rawStream(
        _ server: TestServer,
        version: String = "1.1",
        headers: String = ""
    ) async throws -> (socket: Int32, reader: SocketReader) {
        let host = version == "1.1" ? "Host: 127.0.0.1\r\n" : ""
        let socket = try loopbackClient(
            port: server.port,
            request:
                "GET /structr/EventSource HTTP/\(version)\r\n\(host)\(headers)X-User: root\r\nX-Password: root-pw\r\n\r\n"
        )
        let reader = SocketReader(socket)
        #expect(try await eventually(10) { reader.text.contains("retry: 3000\n\n") })
        return (socket, reader)
    }

    @Test func aStreamAskedWithConnectionCloseStaysOpenInItsRequestsTask() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        let (_, reader) = try await Self.rawStream(server, headers: "Connection: close\r\n")
        defer { reader.stop() }
        // Hummingbird closes such a connection when the request's task returns: the task stays.
        let scraped = try await server.request(.GET, "/structr/metrics").text
        #expect(scraped.contains("herald_requests_in_progress 2"), "\(scraped)")
        #expect(try await server.request(.POST, "/structr/rest/greet").status == 200)
        #expect(try await eventually(10) { reader.text.contains("event: greeting") })
        #expect(!reader.closed)
    }

    @Test func aClientThatClosesItsSendingSideAfterTheRequestKeepsItsStream() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        let (socket, reader) = try await Self.rawStream(server)
        defer { reader.stop() }
        #expect(Glibc.shutdown(socket, Int32(SHUT_WR)) == 0)
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await server.request(.POST, "/structr/rest/greet").status == 200)
        #expect(try await eventually(10) { reader.text.contains("event: greeting") })
        #expect(!reader.closed)
    }

    @Test func anHTTP10ClientGetsAStreamDelimitedByClosingTheConnection() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        let (_, reader) = try await Self.rawStream(server, version: "1.0")
        defer { reader.stop() }
        #expect(try await server.request(.POST, "/structr/rest/greet").status == 200)
        #expect(try await eventually(10) { reader.text.contains("event: greeting") })
        try await server.stop()
        #expect(try await eventually(10) { reader.closed })
        let (text, closed) = (reader.text, reader.closed)
        // RFC 9112 has no chunks for HTTP/1.0: the body is the events themselves, and its end is
        // the connection's.
        #expect(text.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(!text.lowercased().contains("transfer-encoding"))
        #expect(text.lowercased().contains("\r\nconnection: close\r\n"))
        let body = try #require(text.components(separatedBy: "\r\n\r\n").dropFirst().first)
        #expect(body.hasPrefix("retry: 3000\n\nid: "))
        #expect(body.contains("\nevent: greeting\ndata: hello\ndata: world\n\n"))
        #expect(closed)
    }

    @Test func anHTTP10RequestIsAnsweredAsHTTP10AndClosedUnlessKeptAlive() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        let plain = try loopbackClient(
            port: server.port,
            request: "GET /structr/rest/Item HTTP/1.0\r\nX-User: root\r\nX-Password: root-pw\r\n\r\n"
        )
        let (text, closed) = await readUntilClosed(plain, seconds: 15)
        #expect(text.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(text.lowercased().contains("content-length: "))
        #expect(closed)
        let kept = try loopbackClient(
            port: server.port,
            request:
                "GET /structr/rest/Item HTTP/1.0\r\nConnection: keep-alive\r\nX-User: root\r\nX-Password: root-pw\r\n\r\n"
        )
        let reader = SocketReader(kept)
        defer { reader.stop() }
        #expect(try await eventually(10) { reader.text.contains("serialization_time") })
        try await Task.sleep(for: .milliseconds(500))
        #expect(reader.text.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(reader.text.lowercased().contains("connection: keep-alive"))
        #expect(!reader.closed)
    }

    @Test(arguments: TestTransport.allCases) func turningTheEndpointOffChangesNothingElse(transport: TestTransport)
        async throws
    {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: transport) {
            $0.eventSourceEnabled = false
        }
        defer { Task { try? await server.stop() } }
        #expect(try await server.request(.GET, "/structr/EventSource", headers: Self.root).status == 404)
        #expect(try await server.request(.GET, "/structr/rest/Item").status == 200)
        #expect(try await server.request(.POST, "/structr/rest/greet").status == 200)
    }

    @Test(arguments: TestTransport.allCases) func shutdownClosesOpenStreams(transport: TestTransport) async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: transport)
        let stream = try await EventStream(server, headers: Self.root)
        #expect(try await stream.waitFor("retry:"))
        try await server.stop()
        #expect(try await eventually(5) { stream.isEnded })
    }

    @Test func anOpenHTTP11StreamHoldsNoRequestTaskAndEndsWithItsLastChunk() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        let (_, raw) = try await Self.rawStream(server)
        defer { raw.stop() }
        let streams = [
            try await EventStream(server, headers: Self.root), try await EventStream(server, headers: Self.root),
        ]
        for stream in streams { #expect(try await stream.waitFor("retry:")) }
        // Three streams are open; the only request being answered is the scrape itself.
        let metrics = { try await server.request(.GET, "/structr/metrics").text }
        #expect(try await eventually { try await metrics().contains("herald_open_streams 3") })
        let scraped = try await metrics()
        #expect(scraped.contains("herald_requests_in_progress 1"), "\(scraped)")
        // Events still flow to streams no task holds.
        #expect(try await server.request(.POST, "/structr/rest/greet").status == 200)
        for stream in streams { #expect(try await stream.waitFor("event: greeting")) }
        // The server ends the stream: the response's last chunk, then the connection closes.
        try await server.stop()
        #expect(try await eventually(10) { raw.closed })
        let text = raw.text
        #expect(text.contains("event: greeting"))
        #expect(text.hasSuffix("\r\n0\r\n\r\n"), "\(text.suffix(80).debugDescription)")
        for stream in streams { #expect(try await eventually(5) { stream.isEnded }) }
    }
}

@Suite struct ReplayTests {
    static let root = EventSourceTests.root

    @Test(arguments: TestTransport.allCases) func aReconnectGetsWhatItMissedOnceInOrderEvenAcrossARestart(
        transport: TestTransport
    ) async throws {
        let directory = try TestDirectory(files: EventSourceTests.files)
        let first = try await TestServer.start(directory, transport: transport)
        let stream = try await EventStream(first, headers: Self.root)
        #expect(try await stream.waitFor("retry:"))
        #expect(try await first.request(.POST, "/structr/rest/greet").status == 200)
        #expect(try await stream.waitFor("event: greeting"))
        let seen = try #require(eventIDs(stream.text).last)
        stream.close()
        // Sent while the client is away, then the server restarts.
        #expect(try await first.request(.POST, "/structr/rest/ping", body: #"{"to": "root"}"#).status == 200)
        #expect(try await first.request(.POST, "/structr/rest/ping", body: #"{"to": "joe"}"#).status == 200)
        #expect(try await first.request(.POST, "/structr/rest/greet").status == 200)
        try await first.stop()

        let second = try await TestServer.start(directory, transport: transport)
        defer { Task { try? await second.stop() } }
        let back = try await EventStream(second, headers: Self.root.merging(["Last-Event-ID": String(seen)]) { $1 })
        defer { back.close() }
        #expect(try await back.waitFor("event: greeting"))
        // root missed one ping to itself and one greeting; the ping to joe is not root's.
        #expect(back.text.components(separatedBy: "event: ").count - 1 == 2)
        #expect(back.text.contains("data: for root"))
        #expect(!back.text.contains("data: for joe"))
        let replayed = eventIDs(back.text)
        #expect(replayed.count == 2 && replayed[0] > seen && replayed[0] < replayed[1])
        // New events keep counting upwards past the old ones.
        #expect(try await second.request(.POST, "/structr/rest/greet").status == 200)
        #expect(try await eventually { eventIDs(back.text).count == 3 })
        let all = eventIDs(back.text)
        #expect(all.count == 3 && all[2] > all[1])
        let viaQuery = try await EventStream(
            second,
            headers: Self.root,
            path: "/structr/EventSource?lastEventId=\(seen)"
        )
        defer { viaQuery.close() }
        #expect(try await viaQuery.waitFor("data: for root"))
    }

    @Test(arguments: TestTransport.allCases) func aClientOlderThanTheHistoryIsToldToResynchronise(
        transport: TestTransport
    ) async throws {
        let server = try await TestServer.start(try TestDirectory(files: EventSourceTests.files), transport: transport)
        {
            $0.eventHistoryCount = 2
        }
        defer { Task { try? await server.stop() } }
        let stream = try await EventStream(server, headers: Self.root)
        for _ in 0..<4 { #expect(try await server.request(.POST, "/structr/rest/greet").status == 200) }
        #expect(try await eventually { eventIDs(stream.text).count == 4 })
        let first = try #require(eventIDs(stream.text).first)
        stream.close()
        let late = try await EventStream(server, headers: Self.root.merging(["Last-Event-ID": String(first)]) { $1 })
        defer { late.close() }
        #expect(try await late.waitFor("event: greeting"))
        #expect(late.text.hasPrefix("retry: 3000\n\nevent: resync\ndata: {\"reason\":\"history-expired\""))
        #expect(eventIDs(late.text).count == 2)
        let third = try #require(eventIDs(stream.text).dropFirst(2).first)
        let current = try await EventStream(server, headers: Self.root.merging(["Last-Event-ID": String(third)]) { $1 })
        defer { current.close() }
        #expect(try await current.waitFor("event: greeting"))
        #expect(!current.text.contains("resync"))
    }
}
