import HTTPTypes
import HeraldApplication
import HeraldSchema
import HeraldStorage
import Hummingbird
import NIOCore

/// `GET /structr/rest/<Type>?<filters>` asked for `text/event-stream`: the list as a live query
/// (``LiveQueries``), under the same grant as the list itself.
public struct LiveQueryController: Sendable {
    let live: LiveQueries
    let sinkSettings: ChannelSink.Settings

    public init(live: LiveQueries, eventSource: EventSourceController) {
        self.live = live
        self.sinkSettings = eventSource.sinkSettings
    }

    /// Serves the browser helper, ``LiveClientScript``.
    public func register(on router: Router<HeraldRequestContext>) {
        LiveClientScript.register(on: router)
    }

    /// Whether `Accept` asks for an event stream rather than JSON: it names
    /// `text/event-stream` with a quality above zero and at least that of `application/json`.
    static func asksForEvents(_ accept: String?) -> Bool {
        guard let accept else { return false }
        var events = 0.0
        var json = 0.0
        for (range, quality) in EventSourceController.mediaRanges(accept) {
            switch range {
            case "text/event-stream": events = max(events, quality)
            case "application/json": json = max(json, quality)
            default: break
            }
        }
        return events > 0 && events >= json
    }

    /// The stream of `type`'s list with the request's filters and sort, rendered as `view`;
    /// with `Last-Event-ID` (or `lastEventId`), what the client missed when that can be told.
    func stream(
        _ type: TypeDefinition,
        view: String?,
        request: Request,
        context: HeraldRequestContext
    ) async throws -> Response {
        // `lastEventId` is how EventSource polyfills send the last id, not a filter.
        let parameters = request.uri.queryParameters.filter { $0.key != "lastEventId" }
            .map { (String($0.key), String($0.value)) }
        let lastEventID = EventSourceController.lastEventID(of: request)
        let parsed = try RESTQuery(type: type, parameters: parameters)
        guard parsed.pageSize == nil else {
            throw RESTError(
                .badRequest,
                "A live query does not page: drop _page and _pageSize (its result is the whole filtered list)"
            )
        }
        let query = LiveQueries.Query(
            query: parsed.query,
            nesting: Nesting.forView(view, depth: parsed.nestingDepth),
            view: view.flatMap { type.views[$0] },
            signature: ([type.name, view ?? ""]
                + parameters.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map { "\($0.0)=\($0.1)" })
                .joined(separator: "&")
        )
        let origin = request.cookies[Sessions.cookieName].map { Sessions.key($0.value) }
        let (live, caller) = (self.live, context.caller)
        // The live query numbers its own events: the sink has no Last-Event-ID of the hub's.
        return try ChannelSink.response(to: request, context: context, settings: sinkSettings, lastEventID: nil) {
            sink in
            let id = try await live.subscribe(
                query,
                caller: caller,
                origin: origin,
                lastEventID: lastEventID,
                sink: sink
            )
            return { _ in live.unsubscribe(id) }
        }
    }
}
