import HTTPTypes
import Hummingbird
import NIOCore
import Prometheus

/// `GET /structr/metrics`: Prometheus text format (open streams, events published, deliveries,
/// replays, streams dropped as slow).
public struct MetricsController: Sendable {
    let registry: PrometheusCollectorRegistry
    let path: String

    public init(registry: PrometheusCollectorRegistry, path: String) {
        self.registry = registry
        self.path = path
    }

    public func register(on router: Router<HeraldRequestContext>) {
        router.get(RouterPath(path)) { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer()))
            )
        }
    }
}
