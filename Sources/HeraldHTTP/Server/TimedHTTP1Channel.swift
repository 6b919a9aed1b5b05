import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1.1 child channel with two more limits on slow clients: a request head
/// must arrive within `headerTimeout` of its first byte, and a request body may go no longer
/// than `bodyTimeout` without a byte. Idle keep-alive connections are closed by Hummingbird's
/// own `idleTimeout`. A connection past a limit is closed. HTTP/1.0 requests get HTTP/1.0
/// answers (``HTTP10Responses``).
public struct TimedHTTP1Channel: ServerChildChannel {
    public typealias Value = HTTP1Channel.Value

    let inner: HTTP1Channel
    let headerTimeout: TimeAmount
    let bodyTimeout: TimeAmount

    public init(inner: HTTP1Channel, headerTimeout: Duration, bodyTimeout: Duration) {
        self.inner = inner
        self.headerTimeout = TimeAmount(headerTimeout)
        self.bodyTimeout = TimeAmount(bodyTimeout)
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let (headerTimeout, bodyTimeout) = (self.headerTimeout, self.bodyTimeout)
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let timer = RequestTimer(channel: channel, headerTimeout: headerTimeout, bodyTimeout: bodyTimeout)
            let pipeline = channel.pipeline.syncOperations
            // Right before the request decoder: under TLS, after the TLS handler.
            let decoder = try pipeline.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(HeadBytesHandler(timer: timer), position: .before(decoder.handler))
            let codec = try pipeline.handler(type: HTTP1ToHTTPServerCodec.self)
            try pipeline.addHandler(HTTP10Responses(), position: .before(codec))
            try pipeline.addHandler(RequestPartsHandler(timer: timer), position: .after(codec))
            return value
        }
    }

    public func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// The one timer of a connection, confined to its event loop.
final class RequestTimer {
    let channel: any Channel
    let headerTimeout: TimeAmount
    let bodyTimeout: TimeAmount
    var awaitingHead = true
    var scheduled: Scheduled<Void>?

    init(channel: any Channel, headerTimeout: TimeAmount, bodyTimeout: TimeAmount) {
        self.channel = channel
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
    }

    func start(_ amount: TimeAmount) {
        scheduled?.cancel()
        let channel = self.channel
        scheduled = channel.eventLoop.scheduleTask(in: amount) { channel.close(promise: nil) }
    }

    func cancel() {
        scheduled?.cancel()
        scheduled = nil
    }
}

/// Starts the header timer at the first byte of a request head.
final class HeadBytesHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let timer: RequestTimer

    init(timer: RequestTimer) { self.timer = timer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if timer.awaitingHead, timer.scheduled == nil { timer.start(timer.headerTimeout) }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer.cancel()
        context.fireChannelInactive()
    }
}

/// Stops the header timer at the head, and keeps the body timer while the body arrives.
final class RequestPartsHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    let timer: RequestTimer

    init(timer: RequestTimer) { self.timer = timer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            timer.awaitingHead = false
            timer.start(timer.bodyTimeout)
        case .body:
            timer.start(timer.bodyTimeout)
        case .end:
            timer.cancel()
            timer.awaitingHead = true
        }
        context.fireChannelRead(data)
    }
}
