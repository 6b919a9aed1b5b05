import Foundation
import HeraldSchema
import HeraldServer
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A client that opens a stream and then never reads: the worst reader there is.
final class StalledClient {
    let socket: Int32

    init(port: Int, request: String) throws {
        socket = try loopbackClient(port: port, request: request, receiveBuffer: 4096)
    }

    /// Reads everything the server sent and returns true once the server has closed the
    /// connection (end of stream), false if it is still open after `seconds`.
    func drainsToEnd(seconds: Double) async throws -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            let count = recv(socket, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count == 0 { return true }
            if count < 0 { try await Task.sleep(for: .milliseconds(20)) }
        }
        return false
    }

    deinit { close(socket) }
}

@Suite struct SlowReaderTests {
    /// The test schema with `POST /structr/rest/burst`: ten events of 100 KB in one transaction.
    static let burstFiles = EventSourceTests.files.merging([
        "global/burst.js":
            "{ const s = 'x'.repeat(100000); for (let i = 0; i < 10; i++) { $.broadcastEvent('big', s); } }"
    ]) { $1 }

    @Test func aStalledStreamIsDroppedWhileAHealthyOneGetsEverything() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.burstFiles)) {
            $0.eventQueueBytes = 3_000_000
            $0.eventQueueEvents = 1000
        }
        defer { Task { try? await server.stop() } }
        let healthy = try await EventStream(server, headers: EventSourceTests.root, keepsText: false)
        defer { healthy.close() }
        let stalled = try StalledClient(
            port: server.port,
            request:
                "GET /structr/EventSource HTTP/1.1\r\nHost: 127.0.0.1\r\nX-User: root\r\nX-Password: root-pw\r\n\r\n"
        )
        #expect(
            try await eventually {
                (try await server.request(.GET, "/structr/metrics").text).contains(
                    "herald_open_streams 2"
                )
            }
        )
        // 40 bursts of 1 MB, each sent once the healthy reader has the last: far more than the
        // stalled client's socket buffers and its 3 MB queue hold, and never more than 1 MB
        // queued for the healthy one.
        for burst in 1...40 {
            #expect(try await server.request(.POST, "/structr/rest/burst").status == 200)
            #expect(try await eventually(20) { healthy.eventCount == burst * 10 })
        }
        let metrics = try await server.request(.GET, "/structr/metrics").text
        #expect(metrics.contains("herald_streams_dropped_slow_total 1"))
        #expect(metrics.contains("herald_events_published_total 400"))
        #expect(metrics.contains("herald_open_streams 1"))
        // The dropped stream's connection is closed, not left hanging in a blocked write.
        #expect(try await stalled.drainsToEnd(seconds: 10))
    }

    @Test func aStreamWhoseWritesMakeNoProgressIsClosedAfterTheWriteTimeout() async throws {
        // Bounds far above what is sent: only the write timeout can end this stream.
        try await expectStalledStreamDropped {
            $0.eventQueueBytes = 200_000_000
            $0.eventQueueEvents = 1_000_000
            $0.eventSourceWriteTimeout = 400
        }
    }

    @Test func aStreamWithMoreEventsWaitingThanQueueEventsIsClosed() async throws {
        // Only the event count can end this stream within the test's patience.
        try await expectStalledStreamDropped {
            $0.eventQueueBytes = 200_000_000
            $0.eventQueueEvents = 20
            $0.eventSourceWriteTimeout = 60_000
        }
    }

    @Test func aStalledReadersKernelBufferHoldsLittleSoItsQueueLimitHolds() async throws {
        // 2 MB for a reader that takes nothing, with a 500 KB queue: a loopback socket's send
        // buffer grows to about 4 MB, so unless the sink bounds what the kernel holds unsent,
        // the kernel takes all of it, NIO never holds a byte and the stream is never dropped.
        let server = try await TestServer.start(try TestDirectory(files: Self.burstFiles)) {
            $0.eventQueueBytes = 500_000
            $0.eventQueueEvents = 1_000_000
            $0.eventSourceWriteTimeout = 600_000
        }
        defer { Task { try? await server.stop() } }
        let stalled = try await stalledStream(server)
        for _ in 1...2 { #expect(try await server.request(.POST, "/structr/rest/burst").status == 200) }
        try await expectDropped(stalled, by: server)
    }

    @Test func aStalledReaderCountsAsBackedUpOnceNIOHoldsTheUnsentBoundNotNIOs64KiB() async throws {
        // 80 events of 1 KB, one write each, to a reader that takes nothing, dropped after 20
        // written while it is backed up: the kernel takes about 22 (its 16 KiB unsent and the
        // reader's 4 KiB window), NIO 16 more before the stream is backed up, so it is dropped
        // near the 58th. With NIO's default high-water mark of 64 KiB it would be near the 106th.
        let files = EventSourceTests.files.merging([
            "global/kilobyte.js": "{ $.broadcastEvent('kilobyte', 'x'.repeat(1000)); }"
        ]) { $1 }
        let server = try await TestServer.start(try TestDirectory(files: files)) {
            $0.eventQueueBytes = 200_000_000
            $0.eventQueueEvents = 20
            $0.eventSourceWriteTimeout = 600_000
        }
        defer { Task { try? await server.stop() } }
        let stalled = try await stalledStream(server)
        for _ in 1...80 { #expect(try await server.request(.POST, "/structr/rest/kilobyte").status == 200) }
        try await expectDropped(stalled, by: server)
    }

    @Test func aStreamsSocketHoldsAtMostTheConfiguredUnsentBytesAndARESTConnectionTheKernels() async throws {
        let server = try await TestServer.start(try TestDirectory(files: EventSourceTests.files)) {
            $0.eventSourceSocketUnsentBytes = 5000
        }
        defer { Task { try? await server.stop() } }
        let stream = try await stalledStream(server)
        #expect(try serverSideTCPOption(of: stream.socket, TCP_NOTSENT_LOWAT) == 5000)
        let rest = try loopbackClient(
            port: server.port,
            request: "GET /structr/rest/Post HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        defer { close(rest) }
        #expect(try await eventually { try serverSideTCPOption(of: rest, TCP_NOTSENT_LOWAT) != nil })
        #expect(try serverSideTCPOption(of: rest, TCP_NOTSENT_LOWAT) != 5000)
    }

    /// A client that never reads gets 8 MB, more than the kernel's buffers hold; the server must
    /// drop its stream, count it, and close its connection.
    func expectStalledStreamDropped(_ configure: (inout HeraldConfiguration) -> Void) async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.burstFiles), configure: configure)
        defer { Task { try? await server.stop() } }
        let stalled = try await stalledStream(server)
        for _ in 1...8 { #expect(try await server.request(.POST, "/structr/rest/burst").status == 200) }
        try await expectDropped(stalled, by: server)
    }

    /// A stream from a client that never reads, once the server counts it open.
    func stalledStream(_ server: TestServer) async throws -> StalledClient {
        let stalled = try StalledClient(
            port: server.port,
            request:
                "GET /structr/EventSource HTTP/1.1\r\nHost: 127.0.0.1\r\nX-User: root\r\nX-Password: root-pw\r\n\r\n"
        )
        #expect(
            try await eventually {
                (try await server.request(.GET, "/structr/metrics").text).contains("herald_open_streams 1")
            }
        )
        return stalled
    }

    /// The server dropped the stalled stream, counted it, and closed its connection rather than
    /// leave it hanging in a blocked write.
    func expectDropped(_ stalled: StalledClient, by server: TestServer) async throws {
        #expect(
            try await eventually {
                let metrics = try await server.request(.GET, "/structr/metrics").text
                return metrics.contains("herald_open_streams 0")
                    && metrics.contains("herald_streams_dropped_slow_total 1")
            }
        )
        #expect(try await stalled.drainsToEnd(seconds: 10))
    }
}
