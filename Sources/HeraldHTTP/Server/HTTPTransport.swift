import HummingbirdCore
import HummingbirdHTTP2
import Logging
import NIOCore
import NIOHTTP2
import NIOSSL

/// How Herald speaks HTTP on its port: HTTP/1.1 by default, HTTPS with ALPN choosing `h2` or
/// `http/1.1` when TLS files are set, or cleartext HTTP/2 with prior knowledge (h2c) for a
/// server behind a TLS-terminating proxy.
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
        /// Without TLS, speak HTTP/2 only, to clients with prior knowledge (h2c).
        public var cleartextHTTP2 = false
        /// The most streams (EventSources and requests) one HTTP/2 connection may have open at
        /// once; a client that opens more gets its extra streams refused (`REFUSED_STREAM`).
        public var maxConcurrentStreams = 100

        public init() {}
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

    /// What is served, for the start-up log: `https (h2, http/1.1)`, `h2c` or `http/1.1`.
    public var protocols: String {
        if isSecure { return "https (h2, http/1.1)" }
        return configuration.cleartextHTTP2 ? "h2c" : "http/1.1"
    }

    /// The server's child channels for Hummingbird.
    public func serverBuilder() throws -> HTTPServerBuilder {
        let configuration = self.configuration
        if let tlsConfiguration {
            let context = try NIOSSLContext(configuration: tlsConfiguration)
            return .init { responder in
                SecureHTTPChannel(
                    context: context,
                    http1: Self.http1(responder, configuration),
                    http2: Self.http2(responder, configuration)
                )
            }
        }
        if configuration.cleartextHTTP2 { return .init { responder in Self.http2(responder, configuration) } }
        return .init { responder in Self.http1(responder, configuration) }
    }

    private static func http1(
        _ responder: @escaping HTTPChannelHandler.Responder,
        _ configuration: Configuration
    ) -> TimedHTTP1Channel {
        TimedHTTP1Channel(
            inner: HTTP1Channel(
                responder: responder,
                configuration: .init(idleTimeout: TimeAmount(configuration.idleTimeout))
            ),
            headerTimeout: configuration.headerTimeout,
            bodyTimeout: configuration.bodyTimeout
        )
    }

    private static func http2(
        _ responder: @escaping HTTPChannelHandler.Responder,
        _ configuration: Configuration
    ) -> LimitedHTTP2Channel {
        LimitedHTTP2Channel(
            inner: HTTP2Channel(responder: responder, configuration: .init(idleTimeout: configuration.idleTimeout)),
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

/// TLS, then HTTP/2 or HTTP/1.1 as ALPN decides (HTTP/1.1 when the client offers neither).
struct SecureHTTPChannel: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<NIONegotiatedHTTPVersion<TimedHTTP1Channel.Value, HTTP2Channel.Value>>
        let channel: any Channel
    }

    let context: NIOSSLContext
    let http1: TimedHTTP1Channel
    let http2: LimitedHTTP2Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
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

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .http1_1(let connection): await http1.handle(value: connection, logger: logger)
            case .http2(let connection): await http2.handle(value: connection, logger: logger)
            }
        } catch {
            logger.debug("TLS or protocol negotiation failed: \(error)")
        }
    }
}
