import Foundation
import HTTPTypes
import HeraldStorage
import Hummingbird
import NIOCore
import Prometheus

/// `GET /structr/metrics`: Prometheus text format (open streams, events published, deliveries,
/// replays, streams dropped as slow, password checks).
///
/// Only admins (and the superuser) may read it, or a scraper presenting `metrics.token` as the
/// password of HTTP Basic authentication with the user name `metrics`, which Prometheus sends
/// with `basic_auth: {username: metrics, password: <token>}`.
public struct MetricsController: Sendable {
    let registry: PrometheusCollectorRegistry
    let path: String
    let token: String?

    public init(registry: PrometheusCollectorRegistry, path: String, token: String?) {
        self.registry = registry
        self.path = path
        self.token = token.flatMap { $0.isEmpty ? nil : $0 }
    }

    public func register(on router: Router<HeraldRequestContext>) {
        router.get(RouterPath(path)) { request, context in
            guard context.caller.isAdmin || presentsToken(request) else {
                var headers = HTTPFields()
                headers[.wwwAuthenticate] = #"Basic realm="metrics""#
                throw RESTError(
                    .unauthorized,
                    "Metrics are for admins, or for Basic authentication as 'metrics' with metrics.token",
                    headers: headers
                )
            }
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer()))
            )
        }
    }

    /// Whether the request carries `Authorization: Basic` for `metrics:<token>`.
    func presentsToken(_ request: Request) -> Bool {
        guard let token, let header = request.headers[.authorization], header.lowercased().hasPrefix("basic "),
            let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let pair = String(data: decoded, encoding: .utf8)
        else { return false }
        return UserCredentials.constantTimeEqual(pair, "metrics:\(token)")
    }
}
