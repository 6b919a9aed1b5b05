import HTTPTypes
import HeraldStorage

/// A REST request as access control sees it.
public struct RESTOperation: Sendable, Hashable {
    public var method: HTTPRequest.Method
    /// Structr's resource signature: `Project`, `Project/_id`, `Project/_id/doUpdate`, `_login`.
    public var signature: String

    public init(method: HTTPRequest.Method, signature: String) {
        self.method = method
        self.signature = signature
    }
}

/// Decides whether a caller may perform a REST operation at all (object-level rights come on top).
public protocol AccessPolicy: Sendable {
    /// Throws a `RESTError` (401 `Access denied`) when the caller may not.
    func authorize(_ caller: Caller, _ operation: RESTOperation) async throws
}
