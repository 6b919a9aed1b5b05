import NIOCore

/// Holds an HTTP/2 stream's flushes from when its stream endpoint answers until its sink opens,
/// so the response head reaches the client only once the stream is subscribed.
///
/// Hummingbird writes and flushes a response's head before the body runs, and the body is
/// where an event stream joins the hub. Without this, a client could see its stream open
/// (`EventSource.onopen`) and publish before the join, and miss its own event. Over HTTP/1.1
/// the head waits for the sink's first flush anyway (``ResponseOutcome``). One per HTTP/2
/// stream channel, passing flushes on unless held; confined to the stream's event loop.
final class StreamHeadFlush: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = Any

    private var context: ChannelHandlerContext?
    private var holding = false
    private var heldFlush = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func flush(context: ChannelHandlerContext) {
        if holding {
            heldFlush = true
        } else {
            context.flush()
        }
    }

    /// Holds flushes from now.
    func hold() { holding = true }

    /// Passes on the flush held, if any, and every flush after it.
    func release() {
        holding = false
        guard heldFlush else { return }
        heldFlush = false
        context?.flush()
    }

    /// Holds the flushes of `channel`'s response if it is an HTTP/2 stream's, from the loop.
    static func holdResponse(on channel: any Channel) {
        channel.eventLoop.execute {
            (try? channel.pipeline.syncOperations.handler(type: StreamHeadFlush.self))?.hold()
        }
    }

    /// Releases `channel`'s held flushes, if any; on its event loop.
    static func releaseResponse(on channel: any Channel) {
        channel.eventLoop.assertInEventLoop()
        (try? channel.pipeline.syncOperations.handler(type: StreamHeadFlush.self))?.release()
    }
}
