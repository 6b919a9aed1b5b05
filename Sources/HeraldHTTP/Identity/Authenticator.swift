import HTTPTypes
import HeraldSchema
import HeraldStorage
import Hummingbird
import NIOPosix

/// Decides who is calling. Issue-specific schemes (sessions, tokens) plug in here.
public protocol Authenticator: Sendable {
    /// The caller, `.anonymous` when the request carries no credentials; throws a 401
    /// `RESTError` for credentials that do not check out.
    func authenticate(_ request: Request) async throws -> Caller
}

/// Per-request credentials in the `X-User` and `X-Password` headers.
public struct HeaderAuthenticator: Authenticator {
    public static let userHeader = HTTPField.Name("X-User")!
    public static let passwordHeader = HTTPField.Name("X-Password")!

    let storage: any StorageBackend
    let hasher: any PasswordHasher
    /// The superuser's password; `nil` means the superuser cannot authenticate.
    let superuserPassword: String?

    public init(storage: any StorageBackend, hasher: any PasswordHasher, superuserPassword: String?) {
        self.storage = storage
        self.hasher = hasher
        self.superuserPassword = superuserPassword
    }

    public func authenticate(_ request: Request) async throws -> Caller {
        guard let name = request.headers[Self.userHeader] else { return .anonymous }
        let password = request.headers[Self.passwordHeader] ?? ""
        let failure = RESTError(.unauthorized, "Wrong username or password")
        if name == "superuser" {
            guard let superuserPassword, Self.constantTimeEqual(password, superuserPassword) else { throw failure }
            return .superuser
        }
        let user = try await storage.read { tx in
            try tx.fetch(
                EntityQuery(type: BuiltInType.user, filter: .compare("name", .equal, .string(name)), limit: 1)
            ).first
        }
        guard let user, case .string(let hash)? = user.values["password"], !password.isEmpty else { throw failure }
        // bcrypt is slow on purpose: keep it off the shared executor threads.
        let hasher = self.hasher
        guard try await NIOThreadPool.singleton.runIfActive({ hasher.verify(password, hash: hash) }) else {
            throw failure
        }
        return .user(id: user.id, name: name, isAdmin: user.values["isAdmin"]?.boolValue ?? false)
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}
