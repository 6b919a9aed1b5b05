import HTTPTypes
import HeraldEvents
import HeraldStorage
import Hummingbird
import NIOCore

/// `/structr/admin`: the admin console, served from the binary, and its event feed.
///
/// The console is plain HTML, CSS and JavaScript modules; everything it reads and changes goes
/// through the public REST API, so it can do nothing an admin could not do with curl. The one
/// thing of its own is `GET /structr/admin/events`, every published event for admins only
/// (``EventMonitor``).
public struct AdminController: Sendable {
    public static let root = "/structr/admin"
    /// The event monitor's stream.
    public static let eventsPath = "\(root)/events"

    let monitor: EventMonitor
    let sinkSettings: ChannelSink.Settings

    public init(monitor: EventMonitor, eventSource: EventSourceController) {
        self.monitor = monitor
        self.sinkSettings = eventSource.sinkSettings
    }

    /// The console's files by name, with their media types.
    static let files: [String: (bytes: [UInt8], type: String)] = [
        "index.html": (PackageResources.index_html, "text/html; charset=utf-8"),
        "console.css": (PackageResources.console_css, "text/css; charset=utf-8"),
        "console.js": (PackageResources.console_js, "text/javascript; charset=utf-8"),
        "api.js": (PackageResources.api_js, "text/javascript; charset=utf-8"),
    ]

    public func register(on router: Router<HeraldRequestContext>) {
        // `/structr/admin` and `/structr/admin/` are one route; the console's links are absolute.
        router.get(RouterPath(Self.root)) { _, _ in try Self.file("index.html") }
        router.get(RouterPath(Self.eventsPath)) { request, context in
            try await feed(request, context: context)
        }
        router.get(RouterPath("\(Self.root)/:file")) { _, context in
            try Self.file(context.parameters.get("file") ?? "")
        }
    }

    static func file(_ name: String) throws -> Response {
        guard let file = files[name] else { throw RESTError.notFound("No console file \(name)") }
        var headers = HTTPFields()
        headers[.contentType] = file.type
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: file.bytes)))
    }

    /// The monitor stream: `event: published` for every event, as ``EventMonitor`` describes it.
    func feed(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        try context.requireAdmin()
        guard EventSourceController.accepts(request.headers[.accept]) else {
            throw RESTError(.notAcceptable, "This endpoint answers text/event-stream only")
        }
        let monitor = self.monitor
        return try ChannelSink.response(to: request, context: context, settings: sinkSettings, lastEventID: nil) {
            sink in
            let id = monitor.join(sink)
            return { _ in monitor.leave(id) }
        }
    }
}
