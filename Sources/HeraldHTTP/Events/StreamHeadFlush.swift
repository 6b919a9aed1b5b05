import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Holds back an HTTP/2 event stream's response head until its sink opens, so the head reaches
/// the client only once the stream is subscribed.
///
/// Hummingbird writes and flushes a response's head before the body runs, and the body is
/// where an event stream joins the hub. Without this, a client could see its stream open
/// (`EventSource.onopen`) and publish before the join, and miss its own event. Over HTTP/1.1
/// the head waits for the sink's first flush anyway (``ResponseOutcome``). One per HTTP/2
/// stream channel: from a `text/event-stream` head it holds flushes until the sink releases
/// them or the response ends (an answer to `HEAD` has no sink). Confined to the stream's loop.
final class StreamHeadFlush: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var context: ChannelHandlerContext?
    private var holding = false
    private var heldFlush = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            holding = head.headerFields[.contentType]?.hasPrefix("text/event-stream") == true
        case .end:
            release()
        case .body:
            break
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        if holding {
            heldFlush = true
        } else {
            context.flush()
        }
    }

    /// Passes on the flush held, if any, and every flush after it.
    func release() {
        holding = false
        guard heldFlush else { return }
        heldFlush = false
        context?.flush()
    }
}
