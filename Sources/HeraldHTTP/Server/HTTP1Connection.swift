import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// One HTTP/1.1 connection, served from its event loop by a channel handler: each request is
/// answered in a task of its own, and no task exists between requests or while an event
/// stream's sink owns the response.
///
/// Hummingbird serves a connection in a task that lives as long as the connection, waiting for
/// the next request; an idle stream or keep-alive connection then holds that task's memory.
/// Here the handler takes the request parts, starts a task per request with the request's body
/// as an asynchronous sequence fed from the channel, and, when the answer is written, waits for
/// the next head on the loop. Reads follow demand: a request body the application reads slowly
/// stops the connection's reads, and requests pipelined behind the one being answered wait in
/// the handler (a few parts, then reads stop). A response the application does not finish (an
/// event stream whose ``ChannelSink`` ends it) leaves the connection to that sink; parts the
/// client sends after it are read, so a close is seen, and dropped.
///
/// Idle timeouts and graceful shutdown stay with Hummingbird's `HTTPConnectionStateHandler`
/// before this handler. Confined to the connection's event loop.
final class HTTP1Connection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Answers one request on the channel and writes the answer (errors are answers too).
    typealias Answer = @Sendable (Request, any Channel) async -> ResponseOutcome
    /// Whether a request is answered in a task on the connection's event loop
    /// (``LoopTaskExecutor``) rather than on Swift's shared executor.
    typealias RunsOnLoop = @Sendable (HTTPRequest) -> Bool

    /// Request parts held back while a request is answered, before reads stop.
    static let maxDeferredParts = 8

    private let answer: Answer
    private let runsOnLoop: RunsOnLoop
    private let logger: Logger
    /// Made for the first request that runs on the loop.
    private var loopExecutor: LoopTaskExecutor?
    private var context: ChannelHandlerContext?

    /// A request's task runs.
    private var answering = false
    /// Parts of the current request up to its end are still to come.
    private var receivingBody = false
    /// Where they go; nil: nobody reads them (no body announced, or the reader left).
    private var body: RequestBodySource?
    private var bodyWantsMore = true
    /// The connection closes after the current answer (`Connection: close`).
    private var closeAfterAnswer = false
    /// A sink owns the response; nothing more is answered on this connection.
    private var streaming = false
    /// The client closed its sending side.
    private var inputClosed = false
    private var isClosed = false
    /// Parts of pipelined requests that arrived while one was answered.
    private var deferred = CircularBuffer<HTTPRequestPart>()
    /// A read NIO asked for that the handler holds back.
    private var readPending = false
    /// Requests with a body so far, which tells one body's demand from another's.
    private var requests = 0

    init(answer: @escaping Answer, runsOnLoop: @escaping RunsOnLoop, logger: Logger) {
        self.answer = answer
        self.runsOnLoop = runsOnLoop
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receive(unwrapInboundIn(data), context: context)
    }

    private func receive(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        if streaming || isClosed { return }
        if receivingBody {
            switch part {
            case .head:
                // The decoder ends every request before the next head; a head here is a bug.
                context.close(promise: nil)
            case .body(let buffer):
                guard let body else { return }
                switch body.source.yield(buffer) {
                case .produceMore: break
                case .stopProducing: bodyWantsMore = false
                case .dropped: self.body = nil
                }
            case .end:
                body?.source.finish()
                body = nil
                receivingBody = false
                bodyWantsMore = true
                if !answering { answerDeferred(context: context) }
            }
            return
        }
        if answering {
            deferred.append(part)
            return
        }
        guard case .head(let head) = part else { return }
        begin(head, context: context)
    }

    /// Starts the task that answers the request `head` begins.
    private func begin(_ head: HTTPRequest, context: ChannelHandlerContext) {
        answering = true
        receivingBody = true
        closeAfterAnswer = head.headerFields[.connection]?.lowercased() == "close"
        let requestBody: RequestBody
        if Self.announcesBody(head) {
            requests += 1
            let source = RequestBodySource(request: requests, handler: NIOLoopBound(self, eventLoop: context.eventLoop))
            body = source
            bodyWantsMore = true
            requestBody = RequestBody(asyncSequence: source.sequence)
        } else {
            requestBody = RequestBody(buffer: ByteBuffer())
        }
        let request = Request(head: head, body: requestBody)
        let channel = context.channel
        let answer = self.answer
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        guard runsOnLoop(head) else {
            Task {
                let outcome = await answer(request, channel)
                channel.eventLoop.execute { handler.value.answered(outcome) }
            }
            return
        }
        let executor = loopExecutor ?? LoopTaskExecutor(eventLoop: context.eventLoop)
        loopExecutor = executor
        Task(executorPreference: executor) {
            let outcome = await answer(request, channel)
            // On the loop already, but after the task: the handler is not re-entered.
            channel.eventLoop.execute { handler.value.answered(outcome) }
        }
    }

    private static func announcesBody(_ head: HTTPRequest) -> Bool {
        if head.headerFields[.transferEncoding] != nil { return true }
        guard let length = head.headerFields[.contentLength] else { return false }
        return length != "0"
    }

    /// The answer's task is done.
    private func answered(_ outcome: ResponseOutcome) {
        guard let context, answering, !isClosed else { return }
        answering = false
        switch outcome {
        case .failed:
            context.close(promise: nil)
        case .handedOff:
            // The sink owns the response: the connection carries nothing else.
            streaming = true
            deferred.removeAll()
            body?.source.finish()
            body = nil
            resumeReads(context: context)
        case .finished:
            // A body the application left unread is still read to its end, and dropped.
            body?.source.finish()
            body = nil
            if closeAfterAnswer || (inputClosed && deferred.isEmpty && !receivingBody) {
                context.close(promise: nil)
                return
            }
            answerDeferred(context: context)
        }
    }

    /// Takes the parts held back while a request was answered, up to the next request's answer.
    private func answerDeferred(context: ChannelHandlerContext) {
        while !answering || receivingBody, let part = deferred.popFirst() {
            receive(part, context: context)
            if isClosed || streaming { return }
        }
        if !answering, !receivingBody, inputClosed {
            context.close(promise: nil)
            return
        }
        resumeReads(context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            if receivingBody {
                body?.source.finish(ChannelError.eof)
                body = nil
            }
            if !answering, deferred.isEmpty, !streaming { context.close(promise: nil) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosed = true
        body?.source.finish(ChannelError.eof)
        body = nil
        deferred.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        body?.source.finish(error)
        body = nil
        if error is HTTPParserError, !answering, !streaming, !isClosed {
            // What Hummingbird answers a request it cannot parse.
            logger.debug("HTTP parse error, closing connection")
            let head = HTTPResponse(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            isClosed = true
            return
        }
        context.close(promise: nil)
    }

    // MARK: Reads on demand

    func read(context: ChannelHandlerContext) {
        if wantsRead {
            context.read()
        } else {
            readPending = true
        }
    }

    private var wantsRead: Bool {
        if streaming { return true }
        if receivingBody, body != nil { return bodyWantsMore }
        return deferred.count < Self.maxDeferredParts
    }

    private func resumeReads(context: ChannelHandlerContext) {
        guard readPending, wantsRead else { return }
        readPending = false
        context.read()
    }

    /// The body's reader wants more (``RequestBodySource``).
    fileprivate func bodyDemanded(_ request: Int) {
        guard let context, body?.request == request else { return }
        bodyWantsMore = true
        resumeReads(context: context)
    }

    /// The body's reader is gone: the rest of the body is dropped as it comes.
    fileprivate func bodyAbandoned(_ request: Int) {
        guard let context, body?.request == request else { return }
        body = nil
        bodyWantsMore = true
        resumeReads(context: context)
    }
}

/// A request body as the application reads it: an asynchronous sequence the connection's
/// handler feeds, with the reader's demand reported back to the handler on its loop.
struct RequestBodySource {
    typealias Sequence = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, Demand
    >

    /// Which of the connection's requests the body belongs to.
    let request: Int
    let source: Sequence.Source
    let sequence: Sequence

    init(request: Int, handler: NIOLoopBound<HTTP1Connection>) {
        self.request = request
        let made = Sequence.makeSequence(
            backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8),
            finishOnDeinit: false,
            delegate: Demand(request: request, handler: handler)
        )
        self.source = made.source
        self.sequence = made.sequence
    }

    /// Tells the handler, on its loop, that the reader wants more or is gone.
    final class Demand: NIOAsyncSequenceProducerDelegate, Sendable {
        let request: Int
        let handler: NIOLoopBound<HTTP1Connection>

        init(request: Int, handler: NIOLoopBound<HTTP1Connection>) {
            self.request = request
            self.handler = handler
        }

        func produceMore() {
            let (handler, request) = (self.handler, self.request)
            handler.eventLoop.execute { handler.value.bodyDemanded(request) }
        }

        func didTerminate() {
            let (handler, request) = (self.handler, self.request)
            handler.eventLoop.execute { handler.value.bodyAbandoned(request) }
        }
    }
}
