import Foundation
import HTTPTypes
import HeraldEvents
import HeraldSchema
import HeraldScripting
import HeraldStorage
import Hummingbird
import NIOCore

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
    /// The most an HTTP/1.x stream's socket holds that the kernel has not sent yet
    /// (`TCP_NOTSENT_LOWAT`); beyond it bytes wait in NIO, where the queue limits count them.
    /// 0 leaves the kernel's own bound, a send buffer that grows to megabytes.
    public var socketUnsentBytes = 16 * 1024

    public init() {}
}

/// `GET /structr/EventSource`: server-sent events for the caller, identified as for REST and
/// needing the `_eventSource` GET grant.
public struct EventSourceController: Sendable {
    let hub: EventHub
    /// Where replay older than the hub's window comes from.
    let log: EventLog
    let policy: any AccessPolicy
    /// Who may subscribe to the channels a stream asks for.
    let channels: ChannelAccess
    let settings: EventSourceSettings
    /// What every stream's sink is given.
    let sinkSettings: ChannelSink.Settings

    public init(
        hub: EventHub,
        log: EventLog,
        policy: any AccessPolicy,
        channels: ChannelAccess,
        settings: EventSourceSettings
    ) {
        self.hub = hub
        self.log = log
        self.policy = policy
        self.channels = channels
        self.settings = settings
        self.sinkSettings = ChannelSink.Settings(
            retry: settings.retry,
            heartbeat: TimeAmount(settings.heartbeat),
            writeTimeout: TimeAmount(settings.writeTimeout),
            maxBufferedBytes: hub.limits.queueBytes,
            maxBufferedEvents: hub.limits.queueEvents,
            socketUnsentBytes: settings.socketUnsentBytes
        )
    }

    public func register(on router: Router<HeraldRequestContext>) {
        guard settings.enabled else { return }
        router.get(RouterPath(settings.path)) { request, context in
            try await stream(request, context: context)
        }
        // HEAD answers what GET would, checks included, without opening a stream.
        router.head(RouterPath(settings.path)) { request, context in
            try await check(request, context: context)
            _ = try await subscribedChannels(request, context: context)
            return Response(status: .ok, headers: Self.streamHeaders)
        }
    }

    /// The caller's grant and the `Accept` header, as a stream needs them.
    func check(_ request: Request, context: HeraldRequestContext) async throws {
        try await policy.authorize(context.caller, RESTOperation(method: .get, signature: "_eventSource"))
        guard Self.accepts(request.headers[.accept]) else {
            throw RESTError(.notAcceptable, "This endpoint answers text/event-stream only")
        }
    }

    /// The head of every stream's answer.
    static let streamHeaders: HTTPFields = {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        return headers
    }()

    /// Whether an `Accept` header admits `text/event-stream` (alone, in a list, with parameters).
    /// As RFC 9110 has it, the most specific range that matches decides, and `q=0` refuses:
    /// `text/event-stream;q=0, */*` does not admit it.
    static func accepts(_ accept: String?) -> Bool {
        guard let accept else { return true }
        // What EventSource sends, decided without parsing.
        if accept == "text/event-stream" || accept == "*/*" { return true }
        guard !accept.allSatisfy({ $0 == " " || $0 == "\t" }) else { return true }
        var best: (specificity: Int, quality: Double)?
        for (range, quality) in mediaRanges(accept) {
            let specificity: Int
            switch range {
            case "text/event-stream": specificity = 3
            case "text/*": specificity = 2
            case "*/*": specificity = 1
            default: continue
            }
            if best.map({ specificity > $0.specificity }) ?? true { best = (specificity, quality) }
        }
        return (best?.quality ?? 0) > 0
    }

    /// The media ranges of an `Accept` header, lowercased, each with its quality (1 unless `q=`
    /// says otherwise).
    static func mediaRanges(_ accept: String) -> [(range: String, quality: Double)] {
        accept.split(separator: ",").map { range in
            let parts = range.split(separator: ";").map { Self.trimmed($0).lowercased() }
            var quality = 1.0
            for parameter in parts.dropFirst() where parameter.hasPrefix("q=") {
                quality = Double(parameter.dropFirst(2)) ?? 1
            }
            return (parts.first ?? "", quality)
        }
    }

    /// `text` without the spaces and tabs around it (a header's optional whitespace).
    static func trimmed(_ text: Substring) -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = text.firstIndex(where: { !isSpace($0) }), let last = text.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return text[first...last]
    }

    /// The most channels one stream may subscribe to.
    static let maxChannels = 64

    /// The channels of `?channels=a,b`, each allowed for the caller; refused (403) before the
    /// stream opens when any is undeclared or closed to the caller.
    func subscribedChannels(_ request: Request, context: HeraldRequestContext) async throws -> Set<String> {
        guard let list = request.uri.queryParameters["channels"] else { return [] }
        let names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for name in names where !ChannelRule.isChannelName(name) {
            throw RESTError(.badRequest, "'\(name)' is not a channel name (1 to 128 letters, digits and :_-./@)")
        }
        let unique = Set(names)
        guard unique.count <= Self.maxChannels else {
            throw RESTError(
                .badRequest,
                "A stream subscribes to at most \(Self.maxChannels) channels, not \(unique.count)"
            )
        }
        guard !unique.isEmpty else { return [] }
        try await channels.authorize(unique.sorted(), for: context.caller)
        return unique
    }

    func stream(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        try await check(request, context: context)
        let subscribed = try await subscribedChannels(request, context: context)
        let origin = request.cookies[Sessions.cookieName].map { Sessions.key($0.value) }
        let lastEventID = Self.lastEventID(of: request)
        let (hub, log, caller) = (self.hub, self.log, context.caller)
        return try ChannelSink.response(to: request, context: context, settings: sinkSettings, lastEventID: lastEventID)
        {
            sink in
            let joined = try await hub.join(
                caller,
                channels: subscribed,
                origin: origin,
                lastEventID: lastEventID,
                log: log,
                sink: sink
            )
            return { hub.unsubscribe(joined.id, fellBehind: $0 == .dropped) }
        }
    }

    static let lastEventIDHeader = HTTPField.Name("Last-Event-ID")!

    /// The client's last event id: `Last-Event-ID`, or `?lastEventId=` for clients that cannot
    /// set headers.
    static func lastEventID(of request: Request) -> UInt64? {
        (request.headers[lastEventIDHeader] ?? request.uri.queryParameters["lastEventId"].map(String.init))
            .flatMap { UInt64(Self.trimmed(Substring($0))) }
    }

    /// Sent first when a client's `Last-Event-ID` is older than the history: what it missed is
    /// gone, so it should reload its data over REST. No `id:`, so the client keeps its position.
    static func resyncEvent(lastEventID: UInt64) -> String {
        "event: resync\ndata: {\"reason\":\"history-expired\",\"lastEventId\":\"\(lastEventID)\"}\n\n"
    }
}
