import HTTPTypes
import HeraldSchema
import HeraldStorage
import Hummingbird

/// An error answered as Structr's JSON error body: `{code, message, errors}`.
public struct RESTError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var errors: [JSONValue]
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, _ message: String, errors: [JSONValue] = [], headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers
    }

    /// The JSON body.
    public var body: JSONValue {
        ["code": .int(Int64(status.code)), "message": .string(message), "errors": .array(errors)]
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = Response.json(body, status: status)
        response.headers.append(contentsOf: headers)
        return response
    }

    public static func accessDenied() -> RESTError { RESTError(.unauthorized, "Access denied") }

    public static func notFound(_ message: String) -> RESTError { RESTError(.notFound, message) }

    public static func methodNotAllowed(_ method: HTTPRequest.Method, allowed: [HTTPRequest.Method]) -> RESTError {
        var headers = HTTPFields()
        headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
        return RESTError(.methodNotAllowed, "Method \(method.rawValue) not allowed here", headers: headers)
    }
}

extension RESTError {
    /// The REST answer for a refused data operation.
    public init(_ error: DataError) {
        switch error {
        case .unknownType(let type):
            self.init(.notFound, "Type \(type) not found")
        case .notFound(let type, let id):
            self.init(.notFound, "No \(type) with id \(id)")
        case .validation(let errors):
            self.init(
                .unprocessableContent,
                "Unable to commit transaction, validation failed",
                errors: errors.map(\.json)
            )
        case .invalidInput(let message):
            self.init(.unprocessableContent, message)
        case .forbidden(let message):
            self.init(.forbidden, message)
        }
    }
}

extension Response {
    /// A JSON response.
    public static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var bytes = value.jsonBytes
        bytes.append(UInt8(ascii: "\n"))
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }
}
