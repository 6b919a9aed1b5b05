import HummingbirdCore
import Metrics

/// Where the transports run the application for each request, counting the requests being
/// answered (`herald_requests_in_progress`).
///
/// A Swift task keeps the memory its deepest call needed until it ends, and an HTTP/1.1
/// connection's task lives as long as the connection: answering in it would leave every
/// keep-alive connection holding the responder's whole call depth while it waits for its next
/// request. So HTTP/1.1 answers each request in a child task, whose memory goes when the answer
/// is written, and an event stream, whose sink ends its response itself, is then held by no
/// task at all. HTTP/2 runs each stream in a task of its own already.
struct RequestTasks: Sendable {
    private let inProgress: Meter

    init(metrics: any MetricsFactory) {
        inProgress = Meter(label: "herald_requests_in_progress", factory: metrics)
    }

    /// `responder` in a child task of the connection's, one per request (HTTP/1.1).
    func inTaskOfItsOwn(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        let counted = self.counted(responder)
        return { request, writer, channel in
            let handoff = WriterHandoff(writer)
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await counted(request, handoff.take(), channel) }
            }
        }
    }

    /// `responder`, counted while it runs.
    func counted(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        let inProgress = self.inProgress
        return { request, writer, channel in
            inProgress.increment()
            defer { inProgress.decrement() }
            try await responder(request, writer, channel)
        }
    }
}

/// Carries a request's response writer, which cannot be copied, into the task that answers it.
private final class WriterHandoff: @unchecked Sendable {
    private var writer: ResponseWriter?

    init(_ writer: consuming ResponseWriter) { self.writer = .some(writer) }

    /// Called once, by the one task that answers.
    func take() -> ResponseWriter { writer.take()! }
}
