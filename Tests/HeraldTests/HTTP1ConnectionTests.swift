import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// HTTP/1.1 connections as ``HTTP1Connection`` serves them, seen on raw sockets: requests
/// pipelined behind each other, bodies that stream or that nobody reads, a client that stops
/// sending, and bytes that are not HTTP.
@Suite struct HTTP1ConnectionTests {
    static let credentials = "X-User: superuser\r\nX-Password: \(TestServer.superuserPassword)\r\n"

    static func get(_ path: String) -> String {
        "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(credentials)\r\n"
    }

    static func post(_ path: String, body: String) -> String {
        "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(credentials)Content-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// The status codes of the answers in `text`, in the order they came.
    static func statuses(_ text: String) -> [Int] {
        text.components(separatedBy: "HTTP/1.1 ").dropFirst().compactMap { Int($0.prefix(3)) }
    }

    @Test func pipelinedRequestsAreAnsweredInOrderOnOneConnection() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        // Three requests in one write, the second with a body: each answered after the one before.
        let requests =
            Self.get("/structr/rest/Project") + Self.post("/structr/rest/Project", body: #"{"name": "piped"}"#)
            + Self.get("/structr/rest/NoSuchType")
        let reader = SocketReader(try loopbackClient(port: server.port, request: requests))
        defer { reader.stop() }
        #expect(try await eventually(10) { Self.statuses(reader.text).count == 3 })
        #expect(Self.statuses(reader.text) == [200, 201, 404])
        #expect(!reader.closed)
        #expect(try await server.get("/structr/rest/Project").arrayValue?.count == 1)
    }

    @Test func aFloodOfPipelinedRequestsIsAnsweredWholeAndInOrder() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        // Far more than the handler holds back while it answers (8 parts): its reads stop and
        // resume.
        let count = 120
        let requests =
            (0..<count).map { Self.get("/structr/rest/Project?name=p\($0)") }.joined()
            + Self.get("/structr/rest/NoSuchType")
        let reader = SocketReader(try loopbackClient(port: server.port, request: requests))
        defer { reader.stop() }
        #expect(try await eventually(60) { Self.statuses(reader.text).count == count + 1 })
        #expect(Self.statuses(reader.text) == Array(repeating: 200, count: count) + [404])
    }

    @Test func aBodyOverTheLimitIsRefusedAndTheConnectionCarriesTheNextRequest() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema)) { $0.maxBodySize = 1024 }
        defer { Task { try? await server.stop() } }
        // The application stops reading at its limit; the rest of the body is read and dropped,
        // so the next request on the connection is parsed from where it starts.
        let large = #"{"name": "big", "notes": ""# + String(repeating: "x", count: 200_000) + #""}"#
        let requests = Self.post("/structr/rest/Project", body: large) + Self.get("/structr/rest/Project")
        let reader = SocketReader(try loopbackClient(port: server.port, request: requests))
        defer { reader.stop() }
        #expect(try await eventually(10) { Self.statuses(reader.text).count == 2 })
        #expect(Self.statuses(reader.text) == [413, 200])
        #expect(!reader.closed)
    }

    @Test func aChunkedBodyInManyPiecesIsReadWhole() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        // 600 KB in 600 chunks: the body's reader asks for more as it goes.
        let notes = String(repeating: "n", count: 600_000)
        let body = Array(#"{"name": "chunked", "notes": "\#(notes)"}"#.utf8)
        var chunked = ""
        for start in stride(from: 0, to: body.count, by: 1000) {
            let piece = body[start..<min(start + 1000, body.count)]
            chunked += String(piece.count, radix: 16) + "\r\n" + String(decoding: piece, as: UTF8.self) + "\r\n"
        }
        let request =
            "POST /structr/rest/Project HTTP/1.1\r\nHost: 127.0.0.1\r\n\(Self.credentials)"
            + "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\(chunked)0\r\n\r\n"
        let reader = SocketReader(try loopbackClient(port: server.port, request: request))
        defer { reader.stop() }
        #expect(try await eventually(10) { Self.statuses(reader.text).count == 1 })
        #expect(Self.statuses(reader.text) == [201], "\(reader.text.prefix(500))")
        let stored = try await server.get("/structr/rest/Project?name=chunked")
        #expect(stored.arrayValue?.first?["notes"]?.stringValue?.count == notes.count)
    }

    @Test func aClientThatStopsSendingAfterItsRequestGetsTheAnswerThenTheClose() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let socket = try loopbackClient(port: server.port, request: Self.get("/structr/rest/Project"))
        shutdown(socket, Int32(SHUT_WR))
        let (text, closed) = await readUntilClosed(socket, seconds: 10)
        #expect(Self.statuses(text) == [200])
        #expect(closed)
    }

    @Test func shutdownWaitsForARequestInProgressAndClosesIdleConnectionsAtOnce() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        let idle = SocketReader(try loopbackClient(port: server.port, request: Self.get("/structr/rest/Project")))
        defer { idle.stop() }
        #expect(try await eventually(10) { Self.statuses(idle.text) == [200] })
        // A create whose body is still on its way when the shutdown begins: its head and five
        // bytes of the body.
        let body = #"{"name": "last words"}"#
        let whole = Self.post("/structr/rest/Project", body: body)
        let partial = try loopbackClient(port: server.port, request: String(whole.dropLast(body.utf8.count - 5)))
        let slow = SocketReader(partial)
        defer { slow.stop() }
        try await Task.sleep(for: .milliseconds(300))

        let stopped = Atomic<Bool>(false)
        let stopping = Task {
            try await server.stop()
            stopped.store(true, ordering: .sequentiallyConsistent)
        }
        // Idle keep-alive connections close at once; the one receiving a body is waited for.
        #expect(try await eventually(10) { idle.closed })
        try await Task.sleep(for: .milliseconds(700))
        let stoppedEarly = stopped.load(ordering: .sequentiallyConsistent)
        #expect(!stoppedEarly)
        #expect(!slow.closed)
        _ = String(body.dropFirst(5)).withCString { send(partial, $0, strlen($0), 0) }
        #expect(try await eventually(10) { Self.statuses(slow.text) == [201] && slow.closed })
        try await stopping.value
        let stoppedAtLast = stopped.load(ordering: .sequentiallyConsistent)
        #expect(stoppedAtLast)
    }

    @Test func bytesThatAreNotHTTPGet400AndTheConnectionCloses() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let socket = try loopbackClient(port: server.port, request: "NOT HTTP AT ALL\u{1}\r\n\r\n")
        let (text, closed) = await readUntilClosed(socket, seconds: 10)
        #expect(Self.statuses(text) == [400], "\(text)")
        #expect(text.lowercased().contains("connection: close"))
        #expect(closed)
        // The server answers others as before.
        #expect(try await server.request(.GET, "/structr/rest/Project").status == 200)
    }

    @Test func everyAnswerCarriesDateAndServer() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let socket = try loopbackClient(
            port: server.port,
            request:
                "GET /structr/rest/Project HTTP/1.1\r\nHost: 127.0.0.1\r\n\(Self.credentials)Connection: close\r\n\r\n"
        )
        let (text, _) = await readUntilClosed(socket, seconds: 10)
        let head = text.components(separatedBy: "\r\n\r\n").first ?? ""
        #expect(head.contains("Server: Herald"), "\(head)")
        let date = head.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("date: ") }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let parsed = date.flatMap { formatter.date(from: String($0.dropFirst(6))) }
        #expect(parsed.map { abs($0.timeIntervalSinceNow) < 5 } == true, "\(date ?? head)")
    }

    @Test func theRequestTimerMovesWithEachRequestOfAKeepAliveConnection() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema)) {
            $0.headerTimeout = 1
            $0.bodyTimeout = 1
        }
        defer { Task { try? await server.stop() } }
        // A request every 300 ms for 3 s on one connection: each one starts the header timer
        // and its end stops it, so none of the timer's earlier deadlines closes the connection.
        let socket = try loopbackClient(port: server.port, request: Self.get("/structr/rest/Project"))
        let reader = SocketReader(socket)
        defer { reader.stop() }
        for sent in 1...10 {
            #expect(try await eventually(10) { Self.statuses(reader.text).count == sent })
            try await Task.sleep(for: .milliseconds(300))
            let request = Array(Self.get("/structr/rest/Project").utf8)
            #expect(send(socket, request, request.count, 0) == request.count)
        }
        #expect(try await eventually(10) { Self.statuses(reader.text).count == 11 })
        #expect(!reader.closed)
        // Then half a head: the timer still closes the connection, one timeout after it began.
        let started = ContinuousClock.now
        let half = Array("GET /structr/rest/Project HTTP/1.1\r\nHost: x".utf8)
        #expect(send(socket, half, half.count, 0) == half.count)
        #expect(try await eventually(10) { reader.closed })
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(900) && waited < .seconds(3), "closed after \(waited)")
        #expect(Self.statuses(reader.text) == Array(repeating: 200, count: 11))
    }
}
