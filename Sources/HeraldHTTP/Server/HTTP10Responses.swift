import NIOCore
import NIOHTTP1

/// Answers HTTP/1.0 requests as HTTP/1.0, which has no chunked encoding (RFC 9112, 7.1).
///
/// Hummingbird's codec turns every response into an HTTP/1.1 head, so a streamed answer would go
/// out chunked. This handler, below the codec, marks a 1.0 request's answer 1.0: NIO's encoder then
/// sends a body without a length as raw bytes, delimited by closing the connection, and such an
/// answer, or any to a 1.0 client that did not ask to keep the connection, is followed by closing
/// it. Confined to the connection's event loop.
final class HTTP10Responses: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Whether the request being answered came as HTTP/1.0.
    private(set) var answersHTTP10 = false
    private var keepAlive = true
    private var closeAfterEnd = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            answersHTTP10 = head.version.major == 1 && head.version.minor == 0
            keepAlive = head.isKeepAlive
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard answersHTTP10 else {
            context.write(data, promise: promise)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(var head):
            head.version = .http1_0
            closeAfterEnd = !keepAlive || !head.headers.contains(name: "content-length")
            head.headers.remove(name: "transfer-encoding")
            head.headers.replaceOrAdd(name: "connection", value: closeAfterEnd ? "close" : "keep-alive")
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            guard closeAfterEnd else {
                context.write(data, promise: promise)
                return
            }
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            context.writeAndFlush(data, promise: written)
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
