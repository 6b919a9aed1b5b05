import Foundation
import HTTPTypes
import HeraldEvents
import HeraldStorage
import Hummingbird
import NIOCore
import ServiceLifecycle
import Synchronization

/// Settings of the EventSource endpoint.
public struct EventSourceSettings: Sendable {
    /// Off turns the endpoint off and changes nothing else.
    public var enabled = true
    public var path = "/structr/EventSource"
    /// The reconnection delay sent to clients, in milliseconds.
    public var retry = 3000
    /// How often an idle stream gets a comment, so dead connections are noticed.
    public var heartbeat: Duration = .seconds(15)
    /// A write that has not completed after this long closes the connection.
    public var writeTimeout: Duration = .seconds(30)

    public init() {}
}

/// `GET /structr/EventSource`: server-sent events for the caller, identified as for REST and
/// needing the `_eventSource` GET grant.
public struct EventSourceController: Sendable {
    let hub: EventHub
    let policy: any AccessPolicy
    let settings: EventSourceSettings

    public init(hub: EventHub, policy: any AccessPolicy, settings: EventSourceSettings) {
        self.hub = hub
        self.policy = policy
        self.settings = settings
    }

    public func register(on router: Router<HeraldRequestContext>) {
        guard settings.enabled else { return }
        router.get(RouterPath(settings.path)) { request, context in
            try await stream(request, context: context)
        }
    }

    /// Whether an `Accept` header admits `text/event-stream` (alone, in a list, with parameters).
    static func accepts(_ accept: String?) -> Bool {
        guard let accept, !accept.trimmingCharacters(in: .whitespaces).isEmpty else { return true }
        return accept.split(separator: ",").contains { range in
            let type = range.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            return type == "text/event-stream" || type == "text/*" || type == "*/*"
        }
    }

    func stream(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        try await policy.authorize(context.caller, RESTOperation(method: .get, signature: "_eventSource"))
        guard Self.accepts(request.headers[.accept]) else {
            throw RESTError(.notAcceptable, "This endpoint answers text/event-stream only")
        }
        let origin = request.cookies[Sessions.cookieName].map { Sessions.key($0.value) }
        let lastEventID =
            (request.headers[Self.lastEventIDHeader] ?? request.uri.queryParameters["lastEventId"].map(String.init))
            .flatMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        let subscription = hub.subscribe(context.caller, origin: origin, lastEventID: lastEventID)
        let retry = settings.retry
        let heartbeat = settings.heartbeat
        let writeTimeout = settings.writeTimeout
        let channel = context.channel
        let progress = WriteProgress()
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                defer { subscription.cancel() }
                var opening = "retry: \(retry)\n\n"
                if subscription.needsResync, let lastEventID {
                    opening += Self.resyncEvent(lastEventID: lastEventID)
                }
                try await writer.write(ByteBuffer(string: opening))
                try await withGracefulShutdownHandler {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        // Heartbeats while idle; the writer below sends them with the events.
                        let (beats, beat) = AsyncStream.makeStream(of: Void.self)
                        group.addTask {
                            while !Task.isCancelled {
                                try await Task.sleep(for: heartbeat)
                                beat.yield()
                            }
                        }
                        group.addTask {
                            for await _ in beats { subscription.queue.heartbeat() }
                        }
                        // A stream that fell behind (its queue overflowed) or whose write stalls
                        // is closed: the writer may be blocked in a write that never ends.
                        group.addTask {
                            while !Task.isCancelled {
                                try await Task.sleep(for: .milliseconds(200))
                                if subscription.queue.overflowed || progress.stalled(longerThan: writeTimeout) {
                                    try? await channel?.close()
                                    return
                                }
                            }
                        }
                        // Everything queued goes out in one write.
                        while let batch = await subscription.next() {
                            var buffer = ByteBuffer()
                            for event in batch {
                                buffer.writeString(event.id == 0 ? ": heartbeat\n\n" : event.wireFormat)
                            }
                            progress.begin()
                            try await writer.write(buffer)
                            progress.end()
                        }
                        beat.finish()
                        group.cancelAll()
                    }
                } onGracefulShutdown: {
                    subscription.cancel()
                }
                try await writer.finish(nil)
            }
        )
    }

    static let lastEventIDHeader = HTTPField.Name("Last-Event-ID")!

    /// Sent first when a client's `Last-Event-ID` is older than the history: what it missed is
    /// gone, so it should reload its data over REST. No `id:`, so the client keeps its position.
    static func resyncEvent(lastEventID: UInt64) -> String {
        "event: resync\ndata: {\"reason\":\"history-expired\",\"lastEventId\":\"\(lastEventID)\"}\n\n"
    }
}

/// When the write in progress began, if one is.
final class WriteProgress: Sendable {
    private let started = Mutex<ContinuousClock.Instant?>(nil)

    func begin() { started.withLock { $0 = .now } }
    func end() { started.withLock { $0 = nil } }

    func stalled(longerThan limit: Duration) -> Bool {
        started.withLock { $0.map { ContinuousClock.now - $0 > limit } ?? false }
    }
}
