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
}

/// Events on the wire, encoded once and shared by every stream that gets them.
public struct EncodedEvents: Sendable {
    public let events: [ServerEvent]
    /// The events in the `text/event-stream` format.
    public let bytes: ByteBuffer
    /// The same bytes framed as one HTTP/1.1 chunk, for connections using chunked encoding.
    public let chunk: ByteBuffer

    public init(_ events: [ServerEvent], bytes: ByteBuffer) {
        self.events = events
        self.bytes = bytes
        self.chunk = Self.chunk(bytes)
    }

    /// `bytes` framed as one HTTP/1.1 chunk: the size in hex, CRLF, the bytes, CRLF.
    public static func chunk(_ bytes: ByteBuffer) -> ByteBuffer {
        var chunk = ByteBuffer()
        chunk.reserveCapacity(bytes.readableBytes + 12)
        chunk.writeString(String(bytes.readableBytes, radix: 16))
        chunk.writeStaticString("\r\n")
        chunk.writeImmutableBuffer(bytes)
        chunk.writeStaticString("\r\n")
        return chunk
    }
}
