import HeraldStorage
import Hummingbird
import NIOCore

/// The request context: Hummingbird's core storage plus the identified caller.
public struct HeraldRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Who is calling; set once by `IdentityMiddleware`.
    public var caller: Caller = .anonymous
    /// The connection, so a stalled event stream can be closed from outside its writer.
    public let channel: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// The client's IP address, for per-client limits.
    public var clientAddress: String? { channel?.remoteAddress?.ipAddress }
}

extension HeraldRequestContext {
    /// Refuses anyone but an admin (the superuser or an `isAdmin` user): 401 without a login,
    /// 403 for other users.
    func requireAdmin() throws {
        guard caller.isAuthenticated else { throw RESTError(.unauthorized, "Log in as an admin") }
        guard caller.isAdmin else { throw RESTError(.forbidden, "Only admins may use this resource") }
    }
}
