import Foundation
import HummingbirdCore
import HummingbirdHTTP2
import Logging
import NIOCore
import NIOExtras
import NIOHTTP2
import NIOPosix
import ServiceLifecycle

/// Herald's listening sockets: accept connections and set each one up on its event loop, with
/// no Swift task per connection.
///
/// Hummingbird's `Server` hands every accepted connection to an asynchronous sequence that a
/// task on Swift's shared executor reads, and starts a task per connection there. An HTTP/1.1
/// connection is served by its channel handlers alone (``HTTP1Connection``), so those two hops
/// off the event loop did nothing but wake threads: here the pipeline is set up in NIO's child
/// channel initializer, and a task is started only for the work a connection leaves for one
/// (an HTTP/2 connection's streams, see ``ListenerChildChannel``), in a task group of the
/// listener's run.
///
/// There is a listening socket per event loop (`SO_REUSEPORT`), so each loop accepts the
/// connections it serves.
///
/// Graceful shutdown: the sockets close, every connection is asked to quiesce (idle ones close,
/// requests in progress finish, event streams end), and `run()` returns once all have closed.
public struct HTTPListener: Service {
    /// Where and how the listener listens.
    public struct Configuration: Sendable {
        /// The address to listen on.
        public var host = "127.0.0.1"
        /// 0: a free port, which `onRunning` is told.
        public var port = 8082
        /// Connections the kernel holds before they are accepted.
        public var backlog = 256
        /// The most connections open at once; past it, accepting waits for one to close. Each
        /// event loop's socket takes its share: the kernel spreads connections evenly over them.
        public var maxConnections = 4096

        public init() {}
    }

    let configuration: Configuration
    let connections: any ListenerChildChannel
    let onRunning: @Sendable (any Channel) async -> Void
    let logger: Logger
    private let eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

    /// Listens until a graceful shutdown, then returns once every connection has closed.
    public func run() async throws {
        let (work, spawn) = AsyncStream.makeStream(of: ListenerChildChannel.Work.self)
        let sockets = try await bind { spawn.yield($0) }
        await withGracefulShutdownHandler {
            await onRunning(sockets[0].channel)
            await withDiscardingTaskGroup { group in
                // Ends when every socket has closed (graceful shutdown or cancellation).
                let closed = sockets.map(\.channel.closeFuture)
                EventLoopFuture.andAllComplete(closed, on: sockets[0].channel.eventLoop).whenComplete { _ in
                    spawn.finish()
                }
                for await task in work {
                    group.addTask { await task() }
                }
            }
        } onGracefulShutdown: {
            for socket in sockets { socket.quiescing.initiateShutdown(promise: nil) }
        }
        if Task.isCancelled {
            for socket in sockets { try? await socket.channel.close() }
            return
        }
        // Every connection has closed once a second shutdown's promise is kept.
        for socket in sockets {
            let closed = socket.channel.eventLoop.makePromise(of: Void.self)
            socket.quiescing.initiateShutdown(promise: closed)
            try? await closed.futureResult.get()
        }
    }

    /// A listening socket and what tracks its connections for a graceful shutdown.
    struct Socket: Sendable {
        let channel: any Channel
        let quiescing: ServerQuiescingHelper
    }

    /// One listening socket per event loop on the same port (`SO_REUSEPORT`): the kernel spreads
    /// new connections over them, and each loop accepts and serves its own with no hand-over to
    /// another loop. With port 0 the first socket's port is taken for the others.
    private func bind(spawn: @escaping @Sendable (@escaping ListenerChildChannel.Work) -> Void) async throws
        -> [Socket]
    {
        let loops = Array(eventLoopGroup.makeIterator())
        try await refuseATakenPort(on: loops[0])
        // Each socket gets its share of the connection limit, as it gets its share of connections.
        let maxConnections = max(1, configuration.maxConnections / loops.count)
        var sockets: [Socket] = []
        var port = configuration.port
        do {
            for loop in loops {
                let socket = try await bind(on: loop, port: port, maxConnections: maxConnections, spawn: spawn)
                port = socket.channel.localAddress?.port ?? port
                sockets.append(socket)
            }
        } catch {
            for socket in sockets { try? await socket.channel.close() }
            throw error
        }
        return sockets
    }

    /// Fails with "address already in use" when something listens on the configured port: the
    /// sockets of another process of the same user that also set `SO_REUSEPORT` (a second
    /// Herald) would otherwise share the port with this one, each taking part of the clients.
    /// Port 0 is left to the kernel, which picks a port nothing listens on.
    private func refuseATakenPort(on loop: any EventLoop) async throws {
        guard configuration.port != 0 else { return }
        let probe = try await ServerBootstrap(group: loop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: configuration.host, port: configuration.port)
            .get()
        try await probe.close()
    }

    private func bind(
        on loop: any EventLoop,
        port: Int,
        maxConnections: Int,
        spawn: @escaping @Sendable (@escaping ListenerChildChannel.Work) -> Void
    ) async throws -> Socket {
        let quiescing = ServerQuiescingHelper(group: loop)
        let (connections, logger) = (self.connections, self.logger)
        let channel = try await ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: Int32(clamping: configuration.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(AvailableConnectionsChannelHandler(maxConnections: maxConnections))
                    try pipeline.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                connections.setUp(channel, logger: logger, spawn: spawn)
            }
            .bind(host: configuration.host, port: port)
            .get()
        return Socket(channel: channel, quiescing: quiescing)
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
        setup(channel: channel, logger: logger)
    }
}

extension NegotiatedHTTPChannel: ListenerChildChannel {
    typealias Negotiated = NIONegotiatedHTTPVersion<Void, HTTP2Channel.Value>

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
