import NIOCore

/// Where one stream's events go: an HTTP connection, or a queue for an in-process reader.
///
/// The hub calls every method on `eventLoop`, in publish order, so a sink needs no lock: fan-out
/// runs on the event loops that own the connections, one hop per loop and publish rather than
/// one task per stream.
public protocol StreamSink: AnyObject, Sendable {
    /// The loop the sink lives on.
    var eventLoop: any EventLoop { get }

    /// The stream starts; `resync` says the client's `Last-Event-ID` is older than the history.
    func open(resync: Bool)

    /// Sends one or more events, encoded once for every stream. Returns false when the stream
    /// cannot take them because its reader fell behind: the hub then drops the stream, and the
    /// sink has closed its connection.
    func write(_ events: EncodedEvents, flush: Bool) -> Bool

    /// The hub ends the stream: the server shuts down or the session that opened it ended.
    func end()

    /// Whether the transport holds bytes the reader has not taken (its socket's buffers are
    /// filling): the fan-out writes such streams after the others, so a slow reader never
    /// delays a healthy one's write. Read on the sink's loop.
    var isBackedUp: Bool { get }
}

extension StreamSink {
    /// A sink that cannot tell is never backed up.
    public var isBackedUp: Bool { false }
}

/// How a transport frames the bytes of an event stream: as one HTTP/1.1 chunk now, as HTTP/2
/// DATA later. The transport's sinks own their framing; the fan-out only asks for it.
public protocol StreamFraming: AnyObject, Sendable {
    /// `bytes` framed for the wire.
    func frame(_ bytes: ByteBuffer) -> ByteBuffer
}

/// Events on the wire, encoded once and shared by every stream that gets them, with their
/// framing for each transport in use computed once too.
public struct EncodedEvents: Sendable {
    public let events: [ServerEvent]
    /// The events in the `text/event-stream` format.
    public let bytes: ByteBuffer
    private let framed: FramedCopies

    public init(_ events: [ServerEvent], bytes: ByteBuffer) {
        self.events = events
        self.bytes = bytes
        self.framed = FramedCopies()
    }

    /// `bytes` as `framing` frames them: framed for the first stream that asks, shared by the
    /// rest of this delivery.
    public func framed(by framing: some StreamFraming) -> ByteBuffer {
        framed.get(bytes, framing)
    }
}

/// The framed copies of one delivery. A delivery is written on one event loop only (the loop's
/// shard makes it and hands it to that loop's sinks), so no lock is needed.
final class FramedCopies: @unchecked Sendable {
    private var copies: [(framing: ObjectIdentifier, bytes: ByteBuffer)] = []

    func get(_ bytes: ByteBuffer, _ framing: some StreamFraming) -> ByteBuffer {
        let key = ObjectIdentifier(framing)
        if let copy = copies.first(where: { $0.framing == key }) { return copy.bytes }
        let framed = framing.frame(bytes)
        copies.append((key, framed))
        return framed
    }
}
