import HTTPTypes
import HeraldEvents
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A stream's events written straight to its HTTP connection, on the connection's event loop.
///
/// The response head went out through Hummingbird before the sink opens; from then on the sink
/// writes body parts into the channel itself, so a publish costs one write per stream and no
/// task switch. Hummingbird writes the end of the response after ``finished`` completes.
/// Over HTTP/1.1 the channel is the connection and the sink writes pre-framed chunks below the
/// HTTP encoder (to an HTTP/1.0 client, plain body parts through it); over HTTP/2 it is the
/// stream's own channel, whose flow control NIO keeps, and the sink writes body parts that
/// become DATA frames. Dropping a stream closes that channel:
/// over HTTP/2 that resets the one stream, and the connection's other streams carry on.
///
/// A reader that falls behind is bounded: when the bytes NIO holds for the connection would pass
/// `maxBufferedBytes`, or more than `maxBufferedEvents` events were written since the connection
/// last had room, or its writes make no progress for `writeTimeout`, the connection is closed and
/// the client reconnects with `Last-Event-ID`. Idle streams get a heartbeat comment.
/// Its state is confined to the channel's event loop: the hub calls it there, and its ticks and
/// the channel's close callback run there, so it needs no lock.
///
/// Over HTTP/1.x the sink ends the response itself (``endsResponse``): once the stream is open,
/// the request's task returns and ``HTTP1Connection`` leaves the connection to the sink, so an
/// open stream holds no Swift task, only its channel and this sink. It then ends the response with the last chunk and
/// closes the connection, and ends the stream when the server asks its connections to quiesce.
final class ChannelSink: StreamSink, @unchecked Sendable {
    struct Settings: Sendable {
        let retry: Int
        let heartbeat: TimeAmount
        let writeTimeout: TimeAmount
        let maxBufferedBytes: Int
        let maxBufferedEvents: Int
        /// The unsent bytes an HTTP/1.x stream's socket may hold (0: the kernel's default).
        let socketUnsentBytes: Int
        /// What ticks the sinks made with these settings.
        let ticks: SinkTicks

        init(
            retry: Int,
            heartbeat: TimeAmount,
            writeTimeout: TimeAmount,
            maxBufferedBytes: Int,
            maxBufferedEvents: Int,
            socketUnsentBytes: Int
        ) {
            self.retry = retry
            self.heartbeat = heartbeat
            self.writeTimeout = writeTimeout
            self.maxBufferedBytes = maxBufferedBytes
            self.maxBufferedEvents = maxBufferedEvents
            self.socketUnsentBytes = socketUnsentBytes
            // A quarter of the shorter period: a heartbeat or a stall is noticed within 1.25 times it.
            let shorter = min(heartbeat, writeTimeout).nanoseconds
            self.ticks = SinkTicks(interval: .nanoseconds(max(1_000_000, shorter / 4)))
        }
    }

    /// Why the stream ended.
    enum Ending: Sendable {
        /// The client went away.
        case disconnected
        /// The hub ended it (shutdown, or its session ended): the response ends normally.
        case ended
        /// The reader fell behind or stalled: the connection was closed.
        case dropped
    }

    let channel: any Channel
    let eventLoop: any EventLoop
    let settings: Settings
    /// The client's `Last-Event-ID`, named in a resync event.
    let lastEventID: UInt64?
    private let done: EventLoopPromise<Ending>

    // On the event loop only.
    /// Whether the stream is open: on the event loop only.
    private(set) var isOpen = true
    /// Whether anything was written since the last tick, and when the last tick that found a
    /// write (or the opening) was.
    private var wroteSinceTick = false
    private var lastWrite = NIODeadline.distantPast
    /// Since when the connection's pending bytes have not gone down; `lastBuffered` is how many
    /// there were at the last tick.
    private var stalledSince: NIODeadline?
    private var lastBuffered = 0
    /// Events written since the connection last had room: an upper bound on those the client
    /// has not taken yet.
    private var unsentEvents = 0
    /// Where the sink is in its loop's ticks (``SinkTicks``), while it is ticked.
    var tickPosition: Int?
    /// Where pre-framed chunks enter the pipeline: below the HTTP encoder, which would frame the
    /// same bytes once per stream. Nil: body parts go through the whole pipeline.
    private let encoder: ChannelHandlerContext?
    /// Over HTTP/2, the bytes written to the stream whose writes have not completed: NIO keeps
    /// no count of them that a stream channel reports.
    private var http2Pending: Int?
    /// Whether the sink, not the request's task, ends the response (HTTP/1.x).
    let endsResponse: Bool
    /// What holds an HTTP/2 stream's head until the sink opens.
    private var headFlush: StreamHeadFlush?

    /// Completes when the stream is over.
    var finished: EventLoopFuture<Ending> { done.futureResult }

    /// A sink for the response being written on `channel`, made on its event loop, where the
    /// pipeline tells the transport. `mayEndResponse` is false when the request asked to close
    /// the connection after the answer: the connection then closes once the request's task
    /// returns, so that task must wait for the stream.
    static func make(
        channel: any Channel,
        settings: Settings,
        lastEventID: UInt64?,
        mayEndResponse: Bool
    ) async throws -> ChannelSink {
        // At once for an HTTP/1.1 stream request, whose task runs on the loop (``LoopTaskExecutor``).
        try await channel.eventLoop.run {
            ChannelSink(channel: channel, settings: settings, lastEventID: lastEventID, mayEndResponse: mayEndResponse)
        }
    }

    private init(channel: any Channel, settings: Settings, lastEventID: UInt64?, mayEndResponse: Bool) {
        channel.eventLoop.assertInEventLoop()
        self.channel = channel
        self.eventLoop = channel.eventLoop
        self.settings = settings
        self.lastEventID = lastEventID
        self.done = channel.eventLoop.makePromise(of: Ending.self)
        let pipeline = channel.pipeline.syncOperations
        if let http10 = try? pipeline.handler(type: HTTP10Responses.self), http10.answersHTTP10 {
            // HTTP/1.0 has no chunks: the body goes through the encoder as it is, ended by closing.
            encoder = nil
            endsResponse = mayEndResponse
        } else {
            encoder = try? pipeline.context(handlerType: HTTPResponseEncoder.self)
            if encoder == nil {
                http2Pending = 0
                headFlush = try? pipeline.handler(type: StreamHeadFlush.self)
            }
            endsResponse = mayEndResponse && encoder != nil
        }
        if http2Pending == nil, settings.socketUnsentBytes > 0 {
            // A loopback or LAN socket's send buffer grows to megabytes, and a reader that takes
            // nothing would have all of it filled before NIO holds a byte: the queue limits would
            // not see the backlog, and the fan-out would copy every event into the kernel for it.
            // Bounded, the backlog waits in NIO, as one reference to the event shared by every
            // stream; and once NIO holds as much again, the stream is backed up and written after
            // the healthy ones (``isBackedUp``), not after NIO's default 64 KiB.
            let options = channel.syncOptions
            try? options?.setOption(Self.unsentLowWater, value: SocketOptionValue(settings.socketUnsentBytes))
            try? options?.setOption(
                .writeBufferWaterMark,
                value: .init(low: settings.socketUnsentBytes / 2, high: settings.socketUnsentBytes)
            )
        }
    }

    private static let unsentLowWater = ChannelOptions.tcpOption(NIOBSDSocket.Option(rawValue: CInt(TCP_NOTSENT_LOWAT)))

    func open(resync: Bool) {
        eventLoop.assertInEventLoop()
        channel.closeFuture.whenComplete { _ in self.finish(.disconnected) }
        guard isOpen else { return }
        // The head goes out now that the stream is subscribed (HTTP/2; see StreamHeadFlush).
        headFlush?.release()
        let pipeline = channel.pipeline.syncOperations
        if endsResponse {
            // Hummingbird's connection handler takes the quiesce event of a graceful shutdown;
            // the sink hears it first, as the request's task no longer waits for it.
            let state = try? pipeline.handler(type: HTTPConnectionStateHandler.self)
            try? pipeline.addHandler(StreamConnectionEvents(sink: self), position: state.map { .before($0) } ?? .last)
        }
        settings.ticks.add(self)
        var opening = ByteBuffer(string: "retry: \(settings.retry)\n\n")
        if resync, let lastEventID { opening.writeString(EventSourceController.resyncEvent(lastEventID: lastEventID)) }
        send(opening, chunk: ChunkedFraming.shared.frame(opening), flush: true)
        // The first heartbeat comes one period after the stream opens (within a tick).
        wroteSinceTick = false
        lastWrite = .now()
    }

    func write(_ events: EncodedEvents, flush: Bool) -> Bool {
        eventLoop.assertInEventLoop()
        guard isOpen else { return true }
        let chunk = encoder == nil ? events.bytes : events.framed(by: ChunkedFraming.shared)
        if channel.isWritable {
            unsentEvents = events.events.count
        } else {
            // NIO holds more than its high watermark for this client: it may be falling behind.
            unsentEvents += events.events.count
            if buffered + chunk.readableBytes > settings.maxBufferedBytes
                || unsentEvents > settings.maxBufferedEvents
            {
                drop()
                return false
            }
        }
        send(events.bytes, chunk: chunk, flush: flush)
        return true
    }

    func end() { finish(.ended) }

    /// NIO holds more than its high watermark for this client.
    var isBackedUp: Bool { !channel.isWritable }

    /// Ends the stream from outside the loop (graceful shutdown).
    func endSoon() { eventLoop.execute { self.finish(.ended) } }

    private func send(_ bytes: ByteBuffer, chunk: ByteBuffer, flush: Bool) {
        wroteSinceTick = true
        if let encoder {
            encoder.write(NIOAny(IOData.byteBuffer(chunk)), promise: nil)
            if flush { encoder.flush() }
        } else if let pending = http2Pending {
            let size = bytes.readableBytes
            http2Pending = pending + size
            let written = eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { _ in self.http2Pending = self.http2Pending.map { $0 - size } }
            channel.write(HTTPResponsePart.body(bytes), promise: written)
            if flush { channel.flush() }
        } else if flush {
            channel.writeAndFlush(HTTPResponsePart.body(bytes), promise: nil)
        } else {
            channel.write(HTTPResponsePart.body(bytes), promise: nil)
        }
    }

    /// What NIO holds for the connection that the client has not taken yet.
    private var buffered: Int {
        // A stream channel of HTTP/2 stops the process on an option it does not know.
        if let http2Pending { return http2Pending }
        return (try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }

    /// Heartbeats for idle streams; closes a stream whose writes made no progress for too long.
    /// Called by ``SinkTicks`` on the loop, with the time of its pass.
    func tick(now: NIODeadline) {
        guard isOpen else { return }
        let pending = buffered
        if pending > 0, pending >= lastBuffered {
            let since = stalledSince ?? now
            stalledSince = since
            if now - since >= settings.writeTimeout {
                drop()
                return
            }
        } else {
            stalledSince = nil
        }
        lastBuffered = pending
        if wroteSinceTick {
            lastWrite = now
        } else if now - lastWrite >= settings.heartbeat {
            send(Self.heartbeat, chunk: Self.heartbeatChunk, flush: true)
            lastWrite = now
        }
        wroteSinceTick = false
    }

    private static let heartbeat = ByteBuffer(string: ": heartbeat\n\n")
    private static let heartbeatChunk = ChunkedFraming.shared.frame(heartbeat)

    /// The reader fell behind: its connection is closed rather than its backlog kept.
    private func drop() {
        guard isOpen else { return }
        finish(.dropped)
        channel.close(promise: nil)
    }

    private func finish(_ ending: Ending) {
        guard isOpen else { return }
        isOpen = false
        settings.ticks.remove(self)
        headFlush?.release()
        done.succeed(ending)
        if endsResponse, ending == .ended { endResponse() }
    }

    /// Ends the response the sink owns: the last chunk, then the connection closes (the
    /// HTTP/1.0 body is delimited by the close). EventSource clients reconnect either way.
    private func endResponse() {
        let channel = self.channel
        guard let encoder else {
            channel.close(promise: nil)
            return
        }
        let written = eventLoop.makePromise(of: Void.self)
        encoder.writeAndFlush(NIOAny(IOData.byteBuffer(Self.lastChunk)), promise: written)
        written.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }

    private static let lastChunk = ByteBuffer(string: "0\r\n\r\n")
}

/// HTTP/1.1 chunked transfer encoding, the framing of `ChannelSink`'s streams.
public final class ChunkedFraming: StreamFraming {
    public static let shared = ChunkedFraming()

    /// `bytes` as one chunk: the size in hex, CRLF, the bytes, CRLF.
    public func frame(_ bytes: ByteBuffer) -> ByteBuffer {
        var chunk = ByteBuffer()
        chunk.reserveCapacity(bytes.readableBytes + 12)
        chunk.writeString(String(bytes.readableBytes, radix: 16))
        chunk.writeStaticString("\r\n")
        chunk.writeImmutableBuffer(bytes)
        chunk.writeStaticString("\r\n")
        return chunk
    }
}

/// The graceful shutdown a stream whose sink ends its response must hear before Hummingbird's
/// connection-state handler takes it, placed before that handler: its quiesce event ends the
/// stream. (A client that closes its sending side keeps its stream: ``HTTP1Connection`` closes
/// nothing it has handed to a sink.) Confined to the connection's event loop.
final class StreamConnectionEvents: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Any
    private weak var sink: ChannelSink?

    init(sink: ChannelSink) { self.sink = sink }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { sink?.end() }
        context.fireUserInboundEventTriggered(event)
    }
}

extension ChannelSink {
    /// The answer of a stream endpoint (events, a live query, the admin feed): the stream's head,
    /// then a sink on the request's channel that `join` subscribes to its source, returning what
    /// to call when the stream ends.
    ///
    /// When the sink ends the response itself (HTTP/1.x) the body returns once the stream is
    /// open, and the request's task with it. Else (HTTP/2, or a request that asked to close the
    /// connection after the answer, which closes when the task returns) the task
    /// waits for the stream, ending it when the server shuts down gracefully, and ends the
    /// response normally when the server ended the stream; a stream the client left or that
    /// fell behind has its connection dropped.
    static func response(
        to request: Request,
        context: HeraldRequestContext,
        settings: Settings,
        lastEventID: UInt64?,
        join: @escaping @Sendable (ChannelSink) async throws -> @Sendable (Ending) -> Void
    ) throws -> Response {
        guard let channel = context.channel else {
            throw RESTError(.internalServerError, "The connection is not available for streaming")
        }
        let mayEndResponse = request.headers[.connection]?.lowercased() != "close"
        return Response(
            status: .ok,
            headers: EventSourceController.streamHeaders,
            body: ResponseBody { writer in
                // The head is on its way to the channel: making the sink on the channel's loop,
                // and joining from there, puts everything the sink writes after it.
                let sink = try await ChannelSink.make(
                    channel: channel,
                    settings: settings,
                    lastEventID: lastEventID,
                    mayEndResponse: mayEndResponse
                )
                let leave = try await join(sink)
                if sink.endsResponse {
                    sink.finished.whenSuccess(leave)
                    return
                }
                let ending = try await withGracefulShutdownHandler {
                    try await sink.finished.get()
                } onGracefulShutdown: {
                    sink.endSoon()
                }
                leave(ending)
                guard ending == .ended else { throw CancellationError() }
                try await writer.finish(nil)
            }
        )
    }
}
