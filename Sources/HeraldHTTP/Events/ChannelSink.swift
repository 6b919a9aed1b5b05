import HeraldEvents
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// A stream's events written straight to its HTTP connection, on the connection's event loop.
///
/// The response head went out through Hummingbird before the sink opens; from then on the sink
/// writes body parts into the channel itself, so a publish costs one write per stream and no
/// task switch. Hummingbird writes the end of the response after ``finished`` completes.
///
/// A reader that falls behind is bounded: when the bytes NIO holds for the connection would pass
/// `maxBufferedBytes`, or more than `maxBufferedEvents` events were written since NIO last held
/// nothing for it, or a write makes no progress for `writeTimeout`, the connection is closed and
/// the client reconnects with `Last-Event-ID`. Idle streams get a heartbeat comment.
final class ChannelSink: StreamSink {
    struct Settings: Sendable {
        var retry: Int
        var heartbeat: TimeAmount
        var writeTimeout: TimeAmount
        var maxBufferedBytes: Int
        var maxBufferedEvents: Int
    }

    /// Why the stream ended.
    enum Ending: Sendable {
        /// The client went away.
        case disconnected
        /// The hub ended it (shutdown, or its session ended): the response ends normally.
        case ended
        /// The reader fell behind or stalled: the connection was closed.
        case dropped
    }

    struct State {
        var open = true
        var lastWrite = NIODeadline.now()
        var stalledSince: NIODeadline?
        var lastBuffered = 0
        /// Events written since NIO last held nothing for the connection: an upper bound on the
        /// events the client has not taken yet.
        var unsentEvents = 0
        var timer: RepeatedTask?
        /// Where pre-framed chunks enter the pipeline: below the HTTP encoder, which would frame
        /// the same bytes once per stream. Nil: body parts go through the whole pipeline.
        var encoder: ChannelHandlerContext?
    }

    let channel: any Channel
    let settings: Settings
    /// The client's `Last-Event-ID`, named in a resync event.
    let lastEventID: UInt64?
    private let state: NIOLoopBoundBox<State>
    private let done: EventLoopPromise<Ending>

    var eventLoop: any EventLoop { channel.eventLoop }

    /// Completes when the stream is over.
    var finished: EventLoopFuture<Ending> { done.futureResult }

    init(channel: any Channel, settings: Settings, lastEventID: UInt64?) {
        self.channel = channel
        self.settings = settings
        self.lastEventID = lastEventID
        self.state = .makeBoxSendingValue(State(), as: State.self, eventLoop: channel.eventLoop)
        self.done = channel.eventLoop.makePromise(of: Ending.self)
    }

    func open(resync: Bool) {
        channel.closeFuture.whenComplete { _ in self.finish(.disconnected) }
        guard state.value.open else { return }
        state.value.encoder = try? channel.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
        let tick = min(settings.heartbeat, .nanoseconds(settings.writeTimeout.nanoseconds / 2))
        state.value.timer = eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { _ in self.tick() }
        var opening = ByteBuffer(string: "retry: \(settings.retry)\n\n")
        if resync, let lastEventID { opening.writeString(EventSourceController.resyncEvent(lastEventID: lastEventID)) }
        send(opening, chunk: EncodedEvents.chunk(opening), flush: true)
    }

    func write(_ events: EncodedEvents, flush: Bool) -> Bool {
        guard state.value.open else { return true }
        let pending = buffered
        if pending == 0 { state.value.unsentEvents = 0 }
        state.value.unsentEvents += events.events.count
        if pending + events.chunk.readableBytes > settings.maxBufferedBytes
            || state.value.unsentEvents > settings.maxBufferedEvents
        {
            drop()
            return false
        }
        send(events.bytes, chunk: events.chunk, flush: flush)
        return true
    }

    func end() { finish(.ended) }

    /// Ends the stream from outside the loop (graceful shutdown).
    func endSoon() { eventLoop.execute { self.finish(.ended) } }

    private func send(_ bytes: ByteBuffer, chunk: ByteBuffer, flush: Bool) {
        state.value.lastWrite = .now()
        if let encoder = state.value.encoder {
            encoder.write(NIOAny(IOData.byteBuffer(chunk)), promise: nil)
            if flush { encoder.flush() }
        } else if flush {
            channel.writeAndFlush(HTTPResponsePart.body(bytes), promise: nil)
        } else {
            channel.write(HTTPResponsePart.body(bytes), promise: nil)
        }
    }

    /// What NIO holds for the connection that the client has not taken yet.
    private var buffered: Int {
        (try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }

    /// Heartbeats for idle streams; closes a stream whose writes made no progress for too long.
    private func tick() {
        guard state.value.open else { return }
        let now = NIODeadline.now()
        let pending = buffered
        if pending > 0 {
            if state.value.stalledSince == nil || pending < state.value.lastBuffered {
                state.value.stalledSince = now
            }
            state.value.lastBuffered = pending
            if let since = state.value.stalledSince, now - since >= settings.writeTimeout {
                drop()
                return
            }
        } else {
            state.value.stalledSince = nil
        }
        if now - state.value.lastWrite >= settings.heartbeat {
            send(Self.heartbeat, chunk: Self.heartbeatChunk, flush: true)
        }
    }

    private static let heartbeat = ByteBuffer(string: ": heartbeat\n\n")
    private static let heartbeatChunk = EncodedEvents.chunk(heartbeat)

    /// The reader fell behind: its connection is closed rather than its backlog kept.
    private func drop() {
        guard state.value.open else { return }
        finish(.dropped)
        channel.close(promise: nil)
    }

    private func finish(_ ending: Ending) {
        guard state.value.open else { return }
        state.value.open = false
        state.value.timer?.cancel()
        state.value.timer = nil
        done.succeed(ending)
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
