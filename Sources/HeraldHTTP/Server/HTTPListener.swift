import HummingbirdCore
import HummingbirdHTTP2
import Logging
import NIOCore
import NIOExtras
import NIOHTTP2
import NIOPosix
import ServiceLifecycle

/// Herald's listening socket: accepts connections and sets each one up on its own event loop,
/// with no Swift task per connection.
///
/// Hummingbird's `Server` hands every accepted connection to an asynchronous sequence that a
/// task on Swift's shared executor reads, and starts a task per connection there. An HTTP/1.1
/// connection is served by its channel handlers alone (``HTTP1Connection``), so those two hops
/// off the event loop did nothing but wake threads: here the pipeline is set up in NIO's child
/// channel initializer, and a task is started only for the work a connection leaves for one
/// (an HTTP/2 connection's streams, see ``ListenerChildChannel``), in a task group of the
/// listener's run.
///
/// Graceful shutdown: the socket closes, every connection is asked to quiesce (idle ones close,
/// requests in progress finish, event streams end), and `run()` returns once all have closed.
public struct HTTPListener: Service {
    /// Where and how the listener listens.
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        /// 0: a free port, which `onRunning` is told.
        public var port = 8082
        /// Connections the kernel holds before they are accepted.
        public var backlog = 256
        /// The most connections open at once; past it, accepting waits for one to close.
        public var maxConnections = 4096

        public init() {}
    }

    let configuration: Configuration
    let connections: any ListenerChildChannel
    let eventLoopGroup: any EventLoopGroup
    let onRunning: @Sendable (any Channel) async -> Void
    let logger: Logger

    init(
        configuration: Configuration,
        connections: any ListenerChildChannel,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onRunning: @escaping @Sendable (any Channel) async -> Void,
        logger: Logger
    ) {
        self.configuration = configuration
        self.connections = connections
        self.eventLoopGroup = eventLoopGroup
        self.onRunning = onRunning
        self.logger = logger
    }

    public func run() async throws {
        let (work, spawn) = AsyncStream.makeStream(of: ListenerChildChannel.Work.self)
        let quiescing = ServerQuiescingHelper(group: eventLoopGroup)
        let (connections, logger, maxConnections) = (self.connections, self.logger, configuration.maxConnections)
        let server = try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: Int32(clamping: configuration.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(AvailableConnectionsChannelHandler(maxConnections: maxConnections))
                    try pipeline.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                connections.setUp(channel, logger: logger) { spawn.yield($0) }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        await withGracefulShutdownHandler {
            await onRunning(server)
            await withDiscardingTaskGroup { group in
                // Ends when the socket has closed (graceful shutdown or cancellation).
                server.closeFuture.whenComplete { _ in spawn.finish() }
                for await task in work {
                    group.addTask { await task() }
                }
            }
        } onGracefulShutdown: {
            quiescing.initiateShutdown(promise: nil)
        }
        if Task.isCancelled {
            try? await server.close()
            return
        }
        // Every connection has closed once a second shutdown's promise is kept.
        let closed = server.eventLoop.makePromise(of: Void.self)
        quiescing.initiateShutdown(promise: closed)
        try? await closed.futureResult.get()
    }
}

/// How ``HTTPListener`` sets up an accepted connection.
protocol ListenerChildChannel: Sendable {
    /// Work a connection leaves for a task once set up.
    typealias Work = @Sendable () async -> Void

    /// Sets `channel`'s pipeline up on its event loop; work left for a task, now or once the
    /// connection has chosen its protocol, goes to `spawn`.
    func setUp(_ channel: any Channel, logger: Logger, spawn: @escaping @Sendable (@escaping Work) -> Void)
        -> EventLoopFuture<Void>
}

extension HTTP1ServerChannel: ListenerChildChannel {
    /// Nothing is left for a task: ``HTTP1Connection`` serves the connection.
    func setUp(_ channel: any Channel, logger: Logger, spawn: @escaping @Sendable (@escaping Work) -> Void)
        -> EventLoopFuture<Void>
    {
        setup(channel: channel, logger: logger).map { _ in }
    }
}

extension NegotiatedHTTPChannel: ListenerChildChannel {
    typealias Negotiated = NIONegotiatedHTTPVersion<HTTP1ServerChannel.Value, HTTP2Channel.Value>

    /// An HTTP/2 connection leaves its streams to Hummingbird's task; HTTP/1.1 leaves nothing.
    func setUp(_ channel: any Channel, logger: Logger, spawn: @escaping @Sendable (@escaping Work) -> Void)
        -> EventLoopFuture<Void>
    {
        let http2 = self.http2
        return setup(channel: channel, logger: logger).map { value in
            value.negotiated.whenComplete { (result: Result<Negotiated, any Error>) in
                switch result {
                case .success(.http1_1): break
                case .success(.http2(let connection)):
                    spawn { await http2.handle(value: connection, logger: logger) }
                case .failure(let error):
                    logger.debug("TLS or protocol negotiation failed: \(error)")
                }
            }
        }
    }
}
