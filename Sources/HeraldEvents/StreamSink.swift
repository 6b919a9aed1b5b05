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

    /// Sends `encoded` (one or more events, encoded once for every stream); `count` is how many.
    /// Returns false when the stream cannot take them because its reader fell behind: the hub
    /// then drops the stream, and the sink has closed its connection.
    func write(_ encoded: ByteBuffer, events: [ServerEvent], flush: Bool) -> Bool

    /// The hub ends the stream: the server shuts down or the session that opened it ended.
    func end()
}
