import Crypto
import Foundation
import HeraldSchema
import HeraldStorage
import Hummingbird

/// Login sessions: stored in the database (as a hash of the id the client holds), surviving a
/// restart, ending after an idle time.
public struct Sessions: Sendable {
    public static let cookieName = "JSESSIONID"
    /// `lastSeen` is written at most this often per session, not on every request.
    static let touchInterval: Int64 = 60_000

    let storage: any StorageBackend
    let idleTimeout: Duration
    let secureCookies: Bool
    /// Called with a session's key when it ends by logout (the event hub closes its streams).
    let onEnd: @Sendable (String) -> Void

    public init(
        storage: any StorageBackend,
        idleTimeout: Duration,
        secureCookies: Bool,
        onEnd: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.storage = storage
        self.idleTimeout = idleTimeout
        self.secureCookies = secureCookies
        self.onEnd = onEnd
    }

    var idleMilliseconds: Int64 {
        idleTimeout.components.seconds * 1000 + idleTimeout.components.attoseconds / 1_000_000_000_000_000
    }

    /// A fresh session for `userID`; returns the id for the cookie.
    public func create(for userID: String) async throws -> String {
        let token = EntityID.randomHex(bytes: 32)
        let now = Timestamp.now
        let session = LoginSession(key: Self.key(token), userID: userID, created: now, lastSeen: now)
        try await storage.write { tx in try tx.saveSession(session) }
        return token
    }

    /// The user of a live session, or nil for an unknown or expired one.
    public func caller(for token: String) async throws -> Caller? {
        let key = Self.key(token)
        let found = try await storage.read { tx -> (LoginSession, StoredEntity)? in
            guard let session = try tx.session(key), let user = try tx.fetch(type: BuiltInType.user, id: session.userID)
            else { return nil }
            return (session, user)
        }
        guard let (session, user) = found else { return nil }
        let now = Timestamp.now
        let idle = now.millisecondsSince1970 - session.lastSeen.millisecondsSince1970
        if idle > idleMilliseconds {
            try await storage.write { tx in try tx.deleteSession(key) }
            return nil
        }
        if idle > min(Self.touchInterval, idleMilliseconds / 2) {
            let touched = LoginSession(key: key, userID: session.userID, created: session.created, lastSeen: now)
            try await storage.write { tx in try tx.saveSession(touched) }
        }
        return .user(
            id: user.id,
            name: user.values["name"]?.stringValue,
            isAdmin: user.values["isAdmin"]?.boolValue ?? false
        )
    }

    /// Ends the session behind `token`.
    public func end(_ token: String) async throws {
        let key = Self.key(token)
        try await storage.write { tx in try tx.deleteSession(key) }
        onEnd(key)
    }

    /// The cookie that carries `token`.
    public func cookie(_ token: String) -> Cookie {
        Cookie(name: Self.cookieName, value: token, path: "/", secure: secureCookies, httpOnly: true, sameSite: .lax)
    }

    /// A cookie that makes the browser forget the session.
    public func removalCookie() -> Cookie {
        Cookie(
            name: Self.cookieName,
            value: "",
            maxAge: 0,
            path: "/",
            secure: secureCookies,
            httpOnly: true,
            sameSite: .lax
        )
    }

    static func key(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
