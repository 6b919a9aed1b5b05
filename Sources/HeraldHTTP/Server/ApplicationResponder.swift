import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The application as both transports ask it: the router's answer with what Hummingbird's
/// `Application` would add to it (its own `DateCache` is internal): a request id in the log,
/// 500 for an error no middleware turned into an answer, and the `Date` and `Server` headers.
struct ApplicationResponder<Responder: HTTPResponder>: Sendable where Responder.Context == HeraldRequestContext {
    let responder: Responder
    let serverName: String
    let logger: Logger
    private let dates = ResponseDates()

    init(responder: Responder, serverName: String, logger: Logger) {
        self.responder = responder
        self.serverName = serverName
        self.logger = logger
    }

    func respond(to request: Request, channel: any Channel) async -> Response {
        var logger = self.logger
        logger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
        let context = HeraldRequestContext(source: .init(channel: channel, logger: logger))
        var response: Response
        do {
            response = try await responder.respond(to: request, context: context)
        } catch {
            logger.debug("Unrecognised Error", metadata: ["error.type": "\(error)"])
            response = Response(status: .internalServerError)
        }
        response.headers[.date] = dates.now
        response.headers[.server] = serverName
        return response
    }
}

/// The `Date` header's value (RFC 9110, 5.6.7), made once a second.
final class ResponseDates: Sendable {
    private let cached = Mutex<(second: Int, text: String)>((-1, ""))

    var now: String {
        let second = Int(Date().timeIntervalSince1970)
        return cached.withLock { cached in
            if cached.second != second { cached = (second, Self.format(second)) }
            return cached.text
        }
    }

    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func format(_ second: Int) -> String {
        var time = time_t(second)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let month = months[Int(parts.tm_mon)]
        let day = "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(month) \(1900 + parts.tm_year)"
        return "\(day) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
