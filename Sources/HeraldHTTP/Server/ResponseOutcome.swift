import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

/// How writing a response to an HTTP/1.1 connection ended (``HTTP1Connection``).
enum ResponseOutcome: Sendable {
    /// The whole response went out: the connection may carry the next request.
    case finished
    /// The body returned without finishing the response: a ``ChannelSink`` owns it now.
    case handedOff
    /// The connection failed while writing, or the body threw.
    case failed

    /// Writes `response` to `channel`: the head, then whatever its body writes, as HTTP parts
    /// through the channel's pipeline. A write waits until the one before it has reached the
    /// socket, so a client that reads slowly slows the body down; a body that writes one buffer
    /// and finishes goes out in one flush with its head.
    static func write(_ response: Response, to channel: any Channel) async -> ResponseOutcome {
        let progress = Progress()
        channel.write(HTTPResponsePart.head(response.head), promise: nil)
        do {
            try await response.body.write(ChannelBodyWriter(channel: channel, progress: progress))
        } catch {
            return .failed
        }
        return progress.finished ? .finished : .handedOff
    }

    /// Whether the body writer was finished; used by the one task that writes the response.
    private final class Progress: @unchecked Sendable {
        var finished = false
    }

    /// Writes a body's buffers to the channel, one behind: the last buffer waits for the next
    /// write or the end, so that it can go out with the end in one flush.
    private struct ChannelBodyWriter: ResponseBodyWriter {
        let channel: any Channel
        let progress: Progress
        var pending: ByteBuffer?

        init(channel: any Channel, progress: Progress) {
            self.channel = channel
            self.progress = progress
        }

        mutating func write(_ buffer: ByteBuffer) async throws {
            if let pending {
                try await channel.writeAndFlush(HTTPResponsePart.body(pending)).get()
            }
            pending = buffer
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
            if let pending { channel.write(HTTPResponsePart.body(pending), promise: nil) }
            try await channel.writeAndFlush(HTTPResponsePart.end(trailingHeaders)).get()
            progress.finished = true
        }
    }
}
