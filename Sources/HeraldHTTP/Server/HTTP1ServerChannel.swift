import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Herald's HTTP/1.1 connections as ``HTTPListener`` sets them up: NIO's HTTP/1.1 codec and
/// Hummingbird's connection-state handler (idle timeout, graceful shutdown), with the
/// connection served by ``HTTP1Connection``, a task per request and none per connection.
/// Two more limits on slow clients: a request head must arrive within `headerTimeout` of its
/// first byte, and a request body may go no longer than `bodyTimeout` without a byte; a
/// connection past a limit is closed. HTTP/1.0 requests get HTTP/1.0 answers
/// (``HTTP10Responses``).
struct HTTP1ServerChannel: Sendable {
    let answer: HTTP1Connection.Answer
    let runsOnLoop: HTTP1Connection.RunsOnLoop
    let idleTimeout: TimeAmount
    let headerTimeout: TimeAmount
    let bodyTimeout: TimeAmount

    init(
        answer: @escaping HTTP1Connection.Answer,
        runsOnLoop: @escaping HTTP1Connection.RunsOnLoop,
        idleTimeout: Duration,
        headerTimeout: Duration,
        bodyTimeout: Duration
    ) {
        self.answer = answer
        self.runsOnLoop = runsOnLoop
        self.idleTimeout = TimeAmount(idleTimeout)
        self.headerTimeout = TimeAmount(headerTimeout)
        self.bodyTimeout = TimeAmount(bodyTimeout)
    }

    /// Sets the connection's pipeline up; its handlers serve it, nothing is left for a task.
    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldCount = 1000  // Hummingbird's HTTP1Channel's
            let timer = RequestTimer(channel: channel, headerTimeout: headerTimeout, bodyTimeout: bodyTimeout)
            // NIO keeps a channel's last receive buffer for its next read; an idle connection
            // that read one request head keeps one sized for a head, not NIO's default 2 KB.
            try channel.syncOptions?.setOption(.recvAllocator, value: Self.receiveBuffers)
            let pipeline = channel.pipeline.syncOperations
            // Under TLS, after the TLS handler.
            try pipeline.addHandler(HeadBytesHandler(timer: timer))
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false,  // HTTP1Connection holds pipelined requests back
                withErrorHandling: false,  // HTTP1Connection answers a request it cannot parse
                withOutboundHeaderValidation: false,  // Swift HTTP Types validate them
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: limits
            )
            try pipeline.addHandler(HTTP10Responses())
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(RequestPartsHandler(timer: timer))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: .init(idleTimeout), logger: logger))
            try pipeline.addHandler(HTTP1Connection(answer: answer, runsOnLoop: runsOnLoop, logger: logger))
        }
    }

    /// Receive buffers from 1 KB, most request heads, growing for bodies as NIO's default does.
    static let receiveBuffers = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 65536)
}

/// The one timer of a connection, confined to its event loop.
///
/// Starting and stopping it only moves a deadline: NIO cancels a scheduled task by searching
/// every task scheduled on the loop, which with thousands of open streams cost more than the
/// rest of a request. One task stays scheduled while a deadline is set; when it runs early (the
/// deadline moved later) it schedules itself again for the deadline, and when the deadline was
/// cleared it does nothing.
final class RequestTimer {
    let channel: any Channel
    let headerTimeout: TimeAmount
    let bodyTimeout: TimeAmount
    var awaitingHead = true
    /// When the connection closes unless the timer is started again or stopped.
    private(set) var deadline: NIODeadline?
    /// When the scheduled task runs, if one is scheduled.
    private var wakeUp: NIODeadline?

    init(channel: any Channel, headerTimeout: TimeAmount, bodyTimeout: TimeAmount) {
        self.channel = channel
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
    }

    /// Whether a deadline is set.
    var isRunning: Bool { deadline != nil }

    func start(_ amount: TimeAmount) {
        let deadline = NIODeadline.now() + amount
        self.deadline = deadline
        // A task that runs before the deadline reschedules itself; a later one would be late.
        if let wakeUp, wakeUp <= deadline { return }
        schedule(at: deadline)
    }

    func cancel() {
        deadline = nil
    }

    private func schedule(at time: NIODeadline) {
        wakeUp = time
        // Held weakly: a closed connection is not kept until its task runs.
        let timer = NIOLoopBound(Reference(self), eventLoop: channel.eventLoop)
        channel.eventLoop.scheduleTask(deadline: time) { timer.value.timer?.fire(scheduledFor: time) }
    }

    private final class Reference {
        weak var timer: RequestTimer?
        init(_ timer: RequestTimer) { self.timer = timer }
    }

    private func fire(scheduledFor time: NIODeadline) {
        // A task scheduled for an earlier deadline than the current one runs first: it is the
        // one to act, and later ones find `wakeUp` moved on.
        guard wakeUp == time else { return }
        wakeUp = nil
        guard let deadline else { return }
        if deadline > .now() {
            schedule(at: deadline)
        } else {
            self.deadline = nil
            channel.close(promise: nil)
        }
    }
}

/// Starts the header timer at the first byte of a request head.
final class HeadBytesHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let timer: RequestTimer

    init(timer: RequestTimer) { self.timer = timer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if timer.awaitingHead, !timer.isRunning { timer.start(timer.headerTimeout) }
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
