import Foundation
import HeraldSchema
import HeraldStorage
import Hummingbird
import JWTKit

/// Access and refresh tokens (JWT, HMAC-SHA256) for clients that do not keep a session.
///
/// The signing key comes from configuration, or is generated once and kept in the data folder.
public struct Tokens: Sendable {
    public static let cookieName = "access_token"

    struct Payload: JWTPayload {
        var sub: SubjectClaim
        var exp: ExpirationClaim
        var iat: IssuedAtClaim
        /// `access` or `refresh`: a refresh token never authenticates a request.
        var typ: String

        func verify(using algorithm: some JWTAlgorithm) throws {
            try exp.verifyNotExpired()
        }
    }

    let keys: JWTKeyCollection
    let storage: any StorageBackend
    let accessLifetime: Duration
    let refreshLifetime: Duration
    let secureCookies: Bool

    /// Makes a token service signing with `secret`.
    public static func make(
        secret: String,
        storage: any StorageBackend,
        accessLifetime: Duration,
        refreshLifetime: Duration,
        secureCookies: Bool
    ) async -> Tokens {
        let keys = await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return Tokens(
            keys: keys,
            storage: storage,
            accessLifetime: accessLifetime,
            refreshLifetime: refreshLifetime,
            secureCookies: secureCookies
        )
    }

    /// The configured secret, or the one kept in `directory/jwt-secret` (generated on first use).
    public static func secret(configured: String?, dataDirectory: URL) throws -> String {
        if let configured, !configured.isEmpty { return configured }
        let file = dataDirectory.appendingPathComponent("jwt-secret")
        if let existing = try? String(contentsOf: file, encoding: .utf8), existing.count >= 32 {
            return existing.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let secret = EntityID.randomHex(bytes: 32)
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        guard
            FileManager.default.createFile(
                atPath: file.path,
                contents: Data(secret.utf8),
                attributes: [.posixPermissions: 0o600]
            )
        else { throw RESTError(.internalServerError, "cannot write the token signing key to \(file.path)") }
        return secret
    }

    /// A new access and refresh token pair for `userID`, as the token endpoint answers it.
    public func issue(for userID: String) async throws -> (body: JSONValue, access: String) {
        let now = Date()
        let access = try await keys.sign(
            Payload(
                sub: .init(value: userID),
                exp: .init(value: now + seconds(accessLifetime)),
                iat: .init(value: now),
                typ: "access"
            )
        )
        let refresh = try await keys.sign(
            Payload(
                sub: .init(value: userID),
                exp: .init(value: now + seconds(refreshLifetime)),
                iat: .init(value: now),
                typ: "refresh"
            )
        )
        let expiration = Int64((now + seconds(accessLifetime)).timeIntervalSince1970 * 1000)
        return (
            [
                "access_token": .string(access), "refresh_token": .string(refresh), "expiration_date": .int(expiration),
                "token_type": "Bearer",
            ],
            access
        )
    }

    /// The user a token of type `kind` names; a 401 `RESTError` for a forged, expired or wrong one.
    public func user(from token: String, kind: String) async throws -> StoredEntity {
        let payload: Payload
        do {
            payload = try await keys.verify(token, as: Payload.self)
        } catch {
            throw RESTError(.unauthorized, "Invalid or expired token")
        }
        guard payload.typ == kind else { throw RESTError(.unauthorized, "Invalid or expired token") }
        let id = payload.sub.value
        guard let user = try await storage.read({ tx in try tx.fetch(type: BuiltInType.user, id: id) }) else {
            throw RESTError(.unauthorized, "Invalid or expired token")
        }
        return user
    }

    /// The cookie that carries an access token.
    public func cookie(_ access: String) -> Cookie {
        Cookie(
            name: Self.cookieName,
            value: access,
            maxAge: Int(accessLifetime.components.seconds),
            path: "/",
            secure: secureCookies,
            httpOnly: true,
            sameSite: .lax
        )
    }

    func seconds(_ duration: Duration) -> TimeInterval {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// `Authorization: Bearer <token>` or the `access_token` cookie.
public struct TokenAuthenticator: Authenticator {
    let tokens: Tokens

    public init(tokens: Tokens) {
        self.tokens = tokens
    }

    public func authenticate(_ request: Request, context: HeraldRequestContext) async throws -> Caller? {
        var token = request.cookies[Tokens.cookieName]?.value
        if let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            token = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        }
        guard let token, !token.isEmpty else { return nil }
        let user = try await tokens.user(from: token, kind: "access")
        return .user(
            id: user.id,
            name: user.values["name"]?.stringValue,
            isAdmin: user.values["isAdmin"]?.boolValue ?? false
        )
    }
}
