import HTTPTypes
import HeraldSchema
import HeraldStorage
import Hummingbird

/// Decides who is calling. Schemes are tried in order; the first that identifies wins.
public protocol Authenticator: Sendable {
    /// The caller, or `nil` when the request carries none of this scheme's credentials; throws a
    /// 401 `RESTError` for credentials that do not check out.
    func authenticate(_ request: Request, context: HeraldRequestContext) async throws -> Caller?
}

/// Structr's order: session cookie, then (later) tokens, then `X-User`/`X-Password`; else anonymous.
public struct AuthenticatorChain: Sendable {
    let schemes: [any Authenticator]

    public init(_ schemes: [any Authenticator]) {
        self.schemes = schemes
    }

    public func authenticate(_ request: Request, context: HeraldRequestContext) async throws -> Caller {
        for scheme in schemes {
            if let caller = try await scheme.authenticate(request, context: context) { return caller }
        }
        return .anonymous
    }
}

/// Per-request credentials in the `X-User` and `X-Password` headers.
public struct HeaderAuthenticator: Authenticator {
    public static let userHeader = HTTPField.Name("X-User")!
    public static let passwordHeader = HTTPField.Name("X-Password")!

    let credentials: UserCredentials

    public init(credentials: UserCredentials) {
        self.credentials = credentials
    }

    public func authenticate(_ request: Request, context: HeraldRequestContext) async throws -> Caller? {
        guard let name = request.headers[Self.userHeader] else { return nil }
        return try await credentials.verify(
            name: name,
            eMail: nil,
            password: request.headers[Self.passwordHeader] ?? "",
            client: context.clientAddress
        )
    }
}

/// The `JSESSIONID` cookie of a login session.
public struct SessionAuthenticator: Authenticator {
    let sessions: Sessions

    public init(sessions: Sessions) {
        self.sessions = sessions
    }

    public func authenticate(_ request: Request, context: HeraldRequestContext) async throws -> Caller? {
        guard let token = request.cookies[Sessions.cookieName]?.value else { return nil }
        return try await sessions.caller(for: token)
    }
}
