import HTTPTypes
import HeraldScripting
import HeraldStorage
import Hummingbird
import Logging

/// Turns every error into Structr's JSON error body. Errors nobody anticipated are logged and
/// answered with a 500 that reveals nothing internal.
public struct ErrorMiddleware: RouterMiddleware {
    public typealias Context = HeraldRequestContext

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch {
            return try Self.restError(for: error, logger: context.logger).response(from: request, context: context)
        }
    }

    /// The REST error for any thrown error.
    public static func restError(for error: any Error, logger: Logger) -> RESTError {
        switch error {
        case let error as RESTError:
            return error
        case let error as DataError:
            return RESTError(error)
        case let error as ScriptError:
            if case .failed(_, _, let location?) = error { logger.info("script failed at \(location)") }
            return RESTError(HTTPResponse.Status(code: error.status), error.description)
        case let error as StorageError:
            switch error {
            case .full: return RESTError(.init(code: 507, reasonPhrase: "Insufficient Storage"), error.description)
            case .damaged:
                logger.critical("\(error)")
                return RESTError(.serviceUnavailable, error.description)
            case .queryTooLarge, .unknownType, .unknownProperty: return RESTError(.badRequest, error.description)
            case .conflict, .unavailable:
                logger.warning("\(error)")
                return RESTError(.serviceUnavailable, error.description, headers: [.retryAfter: "1"])
            case .database:
                logger.error("\(error)")
                return RESTError(.internalServerError, "Internal server error")
            }
        case let error as HTTPError:
            let message: String
            switch error.status {
            case .notFound: message = "Not found"
            case .contentTooLarge: message = "Request body too large"
            default: message = error.body ?? error.status.reasonPhrase
            }
            return RESTError(error.status, message, headers: error.headers)
        case let error as any HTTPResponseError:
            return RESTError(error.status, error.status.reasonPhrase)
        default:
            logger.error("unexpected error: \(String(reflecting: error))")
            return RESTError(.internalServerError, "Internal server error")
        }
    }
}
