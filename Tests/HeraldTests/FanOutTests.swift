import Foundation
import HeraldEvents
import HeraldHTTP
import HeraldStorage
import NIOCore
import NIOPosix
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A sink that records each write it gets, on its own loop.
final class RecordingSink: StreamSink, @unchecked Sendable {
    let eventLoop: any EventLoop
    private let lock = NSLock()
    private var recorded: [[ServerEvent]] = []
    private var recordedBytes: [String] = []
    private var opened: [Bool] = []
    private var recordedTimes: [ContinuousClock.Instant] = []
    private let afterFirstWrite: (@Sendable () -> Void)?
    /// What ``isBackedUp`` answers, and a log the sink adds its name to at every write.
    let backedUp: Bool
    let name: String
    let order: WriteOrder?

    /// A sink on `eventLoop`; `afterFirstWrite` runs on the loop right after the first write.
    init(
        eventLoop: any EventLoop,
        name: String = "",
        backedUp: Bool = false,
        order: WriteOrder? = nil,
        afterFirstWrite: (@Sendable () -> Void)? = nil
    ) {
        self.eventLoop = eventLoop
        self.afterFirstWrite = afterFirstWrite
        self.backedUp = backedUp
        self.name = name
        self.order = order
    }

    var isBackedUp: Bool { backedUp }

    var writes: [[ServerEvent]] { lock.withLock { recorded } }
    var bytes: [String] { lock.withLock { recordedBytes } }
    var opens: [Bool] { lock.withLock { opened } }
    var times: [ContinuousClock.Instant] { lock.withLock { recordedTimes } }

    func open(resync: Bool) { lock.withLock { opened.append(resync) } }

    func write(_ events: EncodedEvents, flush: Bool) -> Bool {
        #expect(eventLoop.inEventLoop)
        let first = lock.withLock {
            recorded.append(events.events)
            recordedTimes.append(.now)
            recordedBytes.append(String(buffer: events.bytes))
            return recorded.count == 1
        }
        order?.append(name)
        if first { afterFirstWrite?() }
        return true
    }

    func end() {}
}

/// The order sinks were written in, across sinks.
final class WriteOrder: @unchecked Sendable {
    private let lock = NSLock()
    private var names: [String] = []
    var value: [String] { lock.withLock { names } }
    func append(_ name: String) { lock.withLock { names.append(name) } }
}

@Suite struct FanOutTests {
    static var unbatched: EventHub.Limits {
        var limits = EventHub.Limits()
        limits.batchInterval = .zero
        return limits
    }

    /// Holds `loop` busy until the returned closure is called; returns once the loop is held, so
    /// nothing submitted after it can run before the release.
    func block(_ loop: any EventLoop) -> @Sendable () -> Void {
        let gate = DispatchSemaphore(value: 0)
        let held = DispatchSemaphore(value: 0)
        loop.execute {
            held.signal()
            gate.wait()
        }
        held.wait()
        return { gate.signal() }
    }

    @Test func eventsPublishedWhileTheLoopIsBusyGoToEachStreamAsOneWritePerAudience() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let hub = EventHub(limits: Self.unbatched)
        let ann = RecordingSink(eventLoop: loop)
        let ben = RecordingSink(eventLoop: loop)
        hub.subscribe(.user(id: "ann", name: "ann", isAdmin: false), sink: ann)
        hub.subscribe(.user(id: "ben", name: "ben", isAdmin: false), sink: ben)
        let release = block(loop)
        let a = hub.publish(type: "t", data: "a", to: .broadcast(authenticated: true, anonymous: false))
        let b = hub.publish(type: "t", data: "b", to: .broadcast(authenticated: true, anonymous: false))
        let c = hub.publish(type: "t", data: "c", to: .users(["ann"]))
        let d = hub.publish(type: "t", data: "d", to: .broadcast(authenticated: true, anonymous: false))
        let e = hub.publish(type: "t", data: "e", to: .broadcast(authenticated: true, anonymous: false))
        release()
        try await loop.submit {}.get()
        #expect(ann.writes == [[a, b], [c], [d, e]])
        #expect(ben.writes == [[a, b], [d, e]])
        // Encoded once: the bytes of a write are its events' wire format, back to back.
        #expect(ben.bytes == [a.wireFormat + b.wireFormat, d.wireFormat + e.wireFormat])
        #expect(ann.opens == [false])
        try await group.shutdownGracefully()
    }

    @Test func streamsWhoseReadersAreBehindAreWrittenAfterTheOthers() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let hub = EventHub(limits: Self.unbatched)
        let order = WriteOrder()
        for (name, backedUp) in [("slow1", true), ("a", false), ("slow2", true), ("b", false)] {
            hub.subscribe(
                .anonymous,
                sink: RecordingSink(eventLoop: loop, name: name, backedUp: backedUp, order: order)
            )
        }
        _ = hub.publish(type: "t", data: "x", to: .broadcast(authenticated: false, anonymous: true))
        #expect(try await eventually(5) { order.value.count == 4 })
        #expect(order.value == ["a", "b", "slow1", "slow2"])
        try await group.shutdownGracefully()
    }

    @Test func aStreamJoinsAfterWhatWasPublishedBeforeItAndGetsEverythingAfter() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let hub = EventHub(limits: Self.unbatched)
        let early = RecordingSink(eventLoop: loop)
        hub.subscribe(.anonymous, sink: early)
        let release = block(loop)
        let before = hub.publish(type: "t", data: "before", to: .broadcast(authenticated: false, anonymous: true))
        let late = RecordingSink(eventLoop: loop)
        let replaying = RecordingSink(eventLoop: loop)
        hub.subscribe(.anonymous, sink: late)
        let joined = hub.subscribe(.anonymous, lastEventID: before.id - 1, sink: replaying)
        let after = hub.publish(type: "t", data: "after", to: .broadcast(authenticated: false, anonymous: true))
        release()
        try await loop.submit {}.get()
        #expect(early.writes == [[before], [after]])
        #expect(late.writes == [[after]])
        #expect(joined?.replayed == 1)
        #expect(replaying.writes == [[before], [after]])
        try await group.shutdownGracefully()
    }

    @Test func underLoadAStreamGetsOneWritePerBatchInterval() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        var limits = EventHub.Limits()
        limits.batchInterval = .seconds(2)
        let hub = EventHub(limits: limits)
        let everyone = Audience.broadcast(authenticated: false, anonymous: true)
        // What follows the first event is published on the loop right after its write, so it
        // falls inside the interval however slowly this test itself gets scheduled.
        let more = Mutex<[ServerEvent]>([])
        let sink = RecordingSink(eventLoop: loop) {
            let events = (2...4).map { hub.publish(type: "t", data: String($0), to: everyone) }
            more.withLock { $0 = events }
        }
        hub.subscribe(.anonymous, sink: sink)
        try await Task.sleep(for: .milliseconds(2100))
        let published = ContinuousClock.now
        let first = hub.publish(type: "t", data: "1", to: everyone)
        #expect(try await eventually(10) { sink.writes.count == 2 })
        // A lone event goes out at once; what follows within the interval waits for it and
        // then goes out as one write.
        #expect(sink.writes == [[first], more.withLock { $0 }])
        let times = sink.times
        #expect(times[0] - published < .milliseconds(1800))
        #expect(times[1] - times[0] >= .milliseconds(1900))
        try await group.shutdownGracefully()
    }

    @Test func aChunkIsTheSizeInHexTheBytesAndCRLF() {
        let bytes = ByteBuffer(string: String(repeating: "x", count: 300))
        let chunk = EncodedEvents([], bytes: bytes).framed(by: ChunkedFraming.shared)
        #expect(String(buffer: chunk) == "12c\r\n" + String(repeating: "x", count: 300) + "\r\n")
    }

    @Test func streamsOpenedWhilePublishingGetTheirHeadBeforeAnyEvent() async throws {
        let files = [
            "global/flood.js": "{ for (let i = 0; i < 20; i++) { $.broadcastEvent('flood', String(i), true, true); } }",
            "initial-data.json":
                #"{"ResourceAccess": [{"signature": "_eventSource", "flags": 17}, {"signature": "flood", "flags": 64}]}"#,
        ]
        let server = try await TestServer.start(try TestDirectory(files: files))
        defer { Task { try? await server.stop() } }
        let publishing = Task {
            while !Task.isCancelled {
                _ = try? await server.request(.POST, "/structr/rest/flood", headers: [:])
            }
        }
        defer { publishing.cancel() }
        // Raw sockets, opened in a burst while events flood out, read afterwards.
        let sockets = try (0..<200).map { _ in
            try RawStream(port: server.port, request: "GET /structr/EventSource HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        }
        for socket in sockets {
            let text = try await socket.read(until: "event: flood", seconds: 10)
            #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(text.prefix(80))")
            let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
            #expect(body.hasPrefix("d\r\nretry: 3000\n\n\r\n"), "\(body.prefix(80))")
        }
    }
}

/// A client socket that sends a request and reads what comes back.
final class RawStream {
    let socket: Int32

    init(port: Int, request: String) throws {
        socket = try loopbackClient(port: port, request: request)
    }

    /// What the server sent, once it holds `marker` or after `seconds`.
    func read(until marker: String, seconds: Double) async throws -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            let count = recv(socket, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count > 0 {
                received += buffer[0..<count]
                if String(decoding: received, as: UTF8.self).contains(marker) { break }
            } else if count == 0 {
                break
            } else {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        return String(decoding: received, as: UTF8.self)
    }

    deinit { close(socket) }
}
