import Foundation
import HTTPTypes
import Hummingbird

/// Cross-origin rules for browsers.
///
/// CORS: only origins in `allowedOrigins` get CORS headers (credentials included); preflights from
/// anywhere else are refused. Nothing is allowed cross-origin by default.
///
/// Cross-site request forgery: a state-changing request that carries the session cookie must come
/// from the same origin or an allowed one, judged by `Origin` (or `Referer`). Together with the
/// cookie's `SameSite=Lax` this keeps other sites from acting with a user's session.
public struct BrowserProtectionMiddleware: RouterMiddleware {
    public typealias Context = HeraldRequestContext

    public let allowedOrigins: Set<String>
    public let allowedMethods: [HTTPRequest.Method]
    public let allowedHeaders: [String]
    public let maxAge: Int

    public init(
        allowedOrigins: [String],
        allowedMethods: [HTTPRequest.Method] = [.get, .post, .put, .delete, .options],
        allowedHeaders: [String] = ["Content-Type", "Authorization", "X-User", "X-Password", "Last-Event-ID"],
        maxAge: Int = 600
    ) {
        self.allowedOrigins = Set(allowedOrigins.map(Self.normalize))
        self.allowedMethods = allowedMethods
        self.allowedHeaders = allowedHeaders
        self.maxAge = maxAge
    }

    static func normalize(_ origin: String) -> String {
        var origin = origin.lowercased()
        while origin.hasSuffix("/") { origin.removeLast() }
        return origin
    }

    static let origin = HTTPField.Name("Origin")!
    static let referer = HTTPField.Name("Referer")!
    static let requestMethod = HTTPField.Name("Access-Control-Request-Method")!

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws
        -> Response
    {
        let origin = request.headers[Self.origin].map(Self.normalize)
        let allowed = origin.map { allowedOrigins.contains($0) } ?? false

        if request.method == .options, origin != nil, request.headers[Self.requestMethod] != nil {
            guard allowed, let origin else {
                throw RESTError(.forbidden, "Cross-origin requests from this origin are not allowed")
            }
            var response = Response(status: .noContent)
            addCORSHeaders(&response, origin: origin)
            response.headers[.accessControlAllowMethods] = allowedMethods.map(\.rawValue).joined(separator: ", ")
            response.headers[.accessControlAllowHeaders] = allowedHeaders.joined(separator: ", ")
            response.headers[.accessControlMaxAge] = String(maxAge)
            return response
        }

        if Self.changesState(request.method),
            request.cookies[Sessions.cookieName] != nil || request.cookies[Tokens.cookieName] != nil,
            let source = origin ?? request.headers[Self.referer].flatMap(Self.originOf),
            !allowed, !allowedOrigins.contains(source), !isSameOrigin(source, request)
        {
            throw RESTError(.forbidden, "Cross-site request refused: \(source) may not act with this session")
        }

        var response = try await next(request, context)
        if allowed, let origin { addCORSHeaders(&response, origin: origin) }
        return response
    }

    func addCORSHeaders(_ response: inout Response, origin: String) {
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.accessControlAllowCredentials] = "true"
        response.headers[values: .vary].append("Origin")
    }

    static func changesState(_ method: HTTPRequest.Method) -> Bool {
        ![.get, .head, .options].contains(method)
    }

    /// `scheme://host[:port]` of a URL.
    static func originOf(_ url: String) -> String? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let host = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        return normalize(String(url[..<schemeEnd.upperBound]) + host)
    }

    /// Whether `origin` names this server, as the request's `Host` does.
    func isSameOrigin(_ origin: String, _ request: Request) -> Bool {
        guard let host = request.head.authority?.lowercased() else { return false }
        return origin == "http://\(host)" || origin == "https://\(host)"
    }
}
