import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
import Logging
import Metrics
import NIOCore
import NIOHTTP2
import NIOSSL
import NIOTLS

/// How Herald speaks HTTP on its port: HTTP/1.1 by default, HTTPS with ALPN choosing `h2` or
/// `http/1.1` when TLS files are set, or, for a server behind a TLS-terminating proxy, cleartext
/// HTTP/2 with prior knowledge (h2c) next to HTTP/1.1.
public struct HTTPTransport: Sendable {
    /// One transport's settings.
    public struct Configuration: Sendable {
        /// Seconds an idle keep-alive connection (HTTP/1.1) or one with no open stream (HTTP/2)
        /// stays open.
        public var idleTimeout: Duration = .seconds(60)
        /// An HTTP/1.1 request head must arrive within this of its first byte.
        public var headerTimeout: Duration = .seconds(10)
        /// An HTTP/1.1 request body may go no longer than this without a byte.
        public var bodyTimeout: Duration = .seconds(30)
        /// Certificate and key: HTTPS, with HTTP/2 for clients that offer it. Nil: no TLS.
        public var tls: TLSFiles?
        /// Without TLS, also speak HTTP/2 to clients with prior knowledge (h2c): a connection that
        /// opens with HTTP/2's preface gets HTTP/2, any other HTTP/1.1.
        public var cleartextHTTP2 = false
        /// The most streams (EventSources and requests) one HTTP/2 connection may have open at
        /// once; a client that opens more gets its extra streams refused (`REFUSED_STREAM`).
        public var maxConcurrentStreams = 100
        /// Paths (without a query) whose HTTP/1.1 `GET` and `HEAD` requests are answered in a task
        /// on their connection's event loop: the event-stream endpoints, which check the caller
        /// and hand the connection to a sink on that loop (``LoopTaskExecutor``).
        public var loopPaths: Set<String> = []

        public init() {}

        /// Whether `head` is answered on its connection's event loop (see ``loopPaths``).
        func runsOnLoop(_ head: HTTPRequest) -> Bool {
            guard head.method == .get || head.method == .head, let path = head.path else { return false }
            let query = path.firstIndex(of: "?") ?? path.endIndex
            return loopPaths.contains(String(path[..<query]))
        }
    }

    public let configuration: Configuration
    /// Loaded and checked once, before anything listens.
    private let tlsConfiguration: TLSConfiguration?

    /// Checks the TLS files, if any: a missing, unreadable or mismatched file throws here.
    public init(configuration: Configuration) throws(TLSFileError) {
        self.configuration = configuration
        self.tlsConfiguration = try configuration.tls?.serverConfiguration()
    }

    /// Whether clients reach Herald over TLS.
    public var isSecure: Bool { tlsConfiguration != nil }

    /// What is served, for the start-up log: `https (h2, http/1.1)`, `h2c, http/1.1` or `http/1.1`.
    public var protocols: String {
        if isSecure { return "https (h2, http/1.1)" }
        return configuration.cleartextHTTP2 ? "h2c, http/1.1" : "http/1.1"
    }

    /// The listener that serves `application` on this transport. Both transports answer through
    /// ``ApplicationResponder``: HTTP/1.1 connections themselves (``HTTP1Connection``), HTTP/2
    /// streams through Hummingbird's stream channels. `metrics` gets the requests in progress;
    /// `onRunning` is called with the listening socket.
    public func listener<Responder: HTTPResponder>(
        application: Responder,
        configuration listening: HTTPListener.Configuration,
        metrics: any MetricsFactory,
        logger: Logger,
        onRunning: @escaping @Sendable (any Channel) async -> Void
    ) throws -> HTTPListener where Responder.Context == HeraldRequestContext {
        HTTPListener(
            configuration: listening,
            connections: try connections(application: application, metrics: metrics, logger: logger),
            onRunning: onRunning,
            logger: logger
        )
    }

    private func connections<Responder: HTTPResponder>(
        application: Responder,
        metrics: any MetricsFactory,
        logger: Logger
    ) throws -> any ListenerChildChannel where Responder.Context == HeraldRequestContext {
        let configuration = self.configuration
        let inProgress = RequestsInProgress(metrics: metrics)
        let answering = ApplicationResponder(responder: application, serverName: "Herald", logger: logger)
        let http1 = HTTP1ServerChannel(
            answer: { request, channel in
                await inProgress.counting {
                    await ResponseOutcome.write(await answering.respond(to: request, channel: channel), to: channel)
                }
            },
            runsOnLoop: configuration.runsOnLoop,
            idleTimeout: configuration.idleTimeout,
            headerTimeout: configuration.headerTimeout,
            bodyTimeout: configuration.bodyTimeout
        )
        guard tlsConfiguration != nil || configuration.cleartextHTTP2 else { return http1 }
        let context = try tlsConfiguration.map { try NIOSSLContext(configuration: $0) }
        let http2 = Self.http2(
            inProgress.counted { request, writer, channel in
                let response = await answering.respond(to: request, channel: channel)
                try await writer.write(response: response.head, body: response.body)
            },
            configuration
        )
        return NegotiatedHTTPChannel(tls: context, http1: http1, http2: http2)
    }

    private static func http2(
        _ responder: @escaping HTTPChannelHandler.Responder,
        _ configuration: Configuration
    ) -> LimitedHTTP2Channel {
        LimitedHTTP2Channel(
            inner: HTTP2Channel(
                responder: responder,
                configuration: .init(
                    idleTimeout: configuration.idleTimeout,
                    streamConfiguration: .init(additionalChannelHandlers: [StreamHeadFlush()])
                )
            ),
            maxConcurrentStreams: configuration.maxConcurrentStreams
        )
    }
}

/// Hummingbird's HTTP/2 connection with Herald's stream limit: after Hummingbird's pipeline
/// sends NIO's initial settings, a second SETTINGS frame lowers (or raises) the most concurrent
/// streams, which NIO then enforces by refusing streams past it.
struct LimitedHTTP2Channel: ServerChildChannel {
    typealias Value = HTTP2Channel.Value

    let inner: HTTP2Channel
    let maxConcurrentStreams: Int

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let limit = maxConcurrentStreams
        return inner.setup(channel: channel, logger: logger).map { value in
            let settings: HTTP2Settings = [HTTP2Setting(parameter: .maxConcurrentStreams, value: limit)]
            channel.writeAndFlush(
                HTTP2Frame(streamID: .rootStream, payload: .settings(.settings(settings))),
                promise: nil
            )
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// HTTP/2 or HTTP/1.1 on one port: with TLS as ALPN decides (HTTP/1.1 when the client offers
/// neither), without it as the connection's first bytes do (``PriorKnowledgeDetector``).
struct NegotiatedHTTPChannel: Sendable {
    struct Value: Sendable {
        let negotiated: EventLoopFuture<NIONegotiatedHTTPVersion<Void, HTTP2Channel.Value>>
        let channel: any Channel
    }

    /// Nil: cleartext, HTTP/2 by prior knowledge.
    let tls: NIOSSLContext?
    let http1: HTTP1ServerChannel
    let http2: LimitedHTTP2Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            if let tls {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
            } else {
                try channel.pipeline.syncOperations.addHandler(PriorKnowledgeDetector(timeout: http1.headerTimeout))
            }
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return channel.configureHTTP2AsyncSecureUpgrade { channel in
            self.http1.setup(channel: channel, logger: logger)
        } http2ConnectionInitializer: { channel in
            self.http2.setup(channel: channel, logger: logger)
        }
        .map { Value(negotiated: $0, channel: channel) }
    }
}

/// Tells HTTP/2 from HTTP/1.1 on a cleartext connection by its first bytes: HTTP/2's connection
/// preface (RFC 9113, 3.4) means a client with prior knowledge. It reports the choice as ALPN
/// would, so the same negotiation sets up the pipeline, then hands on what it read and goes.
final class PriorKnowledgeDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private var received: ByteBuffer?
    /// A connection that has not said enough to decide within this is closed.
    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var earlier = received {
            earlier.writeBuffer(&bytes)
            bytes = earlier
        }
        let seen = bytes.readableBytesView.prefix(Self.preface.count)
        guard seen.elementsEqual(Self.preface.prefix(seen.count)) else {
            decide("http/1.1", bytes, context: context)
            return
        }
        guard seen.count == Self.preface.count else {
            received = bytes
            return
        }
        decide("h2", bytes, context: context)
    }

    private func decide(_ protocolName: String, _ bytes: ByteBuffer, context: ChannelHandlerContext) {
        received = nil
        context.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: protocolName))
        context.fireChannelRead(wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }
}
