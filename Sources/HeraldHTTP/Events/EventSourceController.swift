import Foundation
import HTTPTypes
import HeraldEvents
import HeraldStorage
import Hummingbird
import NIOCore
import ServiceLifecycle

/// Settings of the EventSource endpoint.
public struct EventSourceSettings: Sendable {
    /// Off turns the endpoint off and changes nothing else.
    public var enabled = true
    public var path = "/structr/EventSource"
    /// The reconnection delay sent to clients, in milliseconds.
    public var retry = 3000
    /// How often an idle stream gets a comment, so dead connections are noticed.
    public var heartbeat: Duration = .seconds(15)

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
        let subscription = hub.subscribe(context.caller, origin: origin)
        let retry = settings.retry
        let heartbeat = settings.heartbeat
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                defer { subscription.cancel() }
                try await writer.write(ByteBuffer(string: "retry: \(retry)\n\n"))
                // Events and heartbeats meet in one queue with one writer.
                let (chunks, output) = AsyncStream.makeStream(of: String.self)
                try await withGracefulShutdownHandler {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await event in subscription.events { output.yield(event.wireFormat) }
                            output.finish()
                        }
                        group.addTask {
                            while !Task.isCancelled {
                                try await Task.sleep(for: heartbeat)
                                output.yield(": heartbeat\n\n")
                            }
                        }
                        for await chunk in chunks {
                            try await writer.write(ByteBuffer(string: chunk))
                        }
                        group.cancelAll()
                    }
                } onGracefulShutdown: {
                    subscription.cancel()
                }
                try await writer.finish(nil)
            }
        )
    }
}
