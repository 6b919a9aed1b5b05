import HummingbirdCore
import Metrics

/// Counts the requests being answered, on both transports (`herald_requests_in_progress`).
struct RequestsInProgress: Sendable {
    private let meter: Meter

    init(metrics: any MetricsFactory) {
        meter = Meter(label: "herald_requests_in_progress", factory: metrics)
    }

    /// `responder`, counted while it runs (HTTP/2, whose streams Hummingbird serves).
    func counted(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        let meter = self.meter
        return { request, writer, channel in
            meter.increment()
            defer { meter.decrement() }
            try await responder(request, writer, channel)
        }
    }

    /// `answer`, counted while it runs (HTTP/1.1: the answer and its writing).
    func counting<T>(_ answer: () async -> T) async -> T {
        meter.increment()
        defer { meter.decrement() }
        return await answer()
    }
}
