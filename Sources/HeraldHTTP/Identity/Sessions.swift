import Crypto
import Foundation
import HeraldSchema
import HeraldStorage
import Hummingbird
import Synchronization

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
    /// Sessions recently found, with their caller, so a request does not read the database.
    let cache = SessionCache()

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
    ///
    /// A session found in the last `SessionCache.lifetime` answers from memory as long as it is
    /// neither idle past the timeout nor due for its `lastSeen` write; logging out, and every
    /// commit that writes a `User`, empties the cache, so a demotion or a deleted user takes
    /// effect at once.
    public func caller(for token: String) async throws -> Caller? {
        let key = Self.key(token)
        let now = Timestamp.now
        if let cached = cache.entry(key, at: now) {
            let idle = now.millisecondsSince1970 - cached.lastSeen.millisecondsSince1970
            if idle <= min(Self.touchInterval, idleMilliseconds / 2) { return cached.caller }
        }
        let generation = cache.generation
        let found = try await storage.read { tx -> (LoginSession, StoredEntity)? in
            guard let session = try tx.session(key), let user = try tx.fetch(type: BuiltInType.user, id: session.userID)
            else { return nil }
            return (session, user)
        }
        guard let (session, user) = found else { return nil }
        let idle = now.millisecondsSince1970 - session.lastSeen.millisecondsSince1970
        if idle > idleMilliseconds {
            try await storage.write { tx in try tx.deleteSession(key) }
            return nil
        }
        var lastSeen = session.lastSeen
        if idle > min(Self.touchInterval, idleMilliseconds / 2) {
            let touched = LoginSession(key: key, userID: session.userID, created: session.created, lastSeen: now)
            try await storage.write { tx in try tx.saveSession(touched) }
            lastSeen = now
        }
        let caller = Caller.user(
            id: user.id,
            name: user.values["name"]?.stringValue,
            isAdmin: user.values["isAdmin"]?.boolValue ?? false
        )
        cache.store(key, caller: caller, lastSeen: lastSeen, at: now, ifStill: generation)
        return caller
    }

    /// Forgets every cached session's caller: called after commits that write users.
    public func forgetCallers() {
        cache.removeAll()
    }

    /// Ends the session behind `token`.
    public func end(_ token: String) async throws {
        let key = Self.key(token)
        // Before the delete and after it: a lookup that read the row meanwhile cannot cache it.
        cache.remove(key)
        try await storage.write { tx in try tx.deleteSession(key) }
        cache.remove(key)
        onEnd(key)
    }

    /// A session ended elsewhere (another node of a cluster logged it out): forgets it and
    /// closes what it opened here.
    public func ended(key: String) {
        cache.remove(key)
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
        EntityID.hex(SHA256.hash(data: Data(token.utf8)))
    }
}

/// Sessions found recently, by key, with the caller they stand for.
///
/// Entries live at most `lifetime`, so a session ended where this process cannot see it (by
/// another process on the same database) stops working within it. A generation counter keeps a
/// lookup that raced a `removeAll` from storing what it read before.
final class SessionCache: Sendable {
    struct Entry {
        var caller: Caller
        var lastSeen: Timestamp
        var cachedAt: Timestamp
    }

    /// How long an entry answers before the database is read again.
    static let lifetime: Int64 = 10_000
    /// More entries than this and the cache starts over.
    static let capacity = 100_000

    private let state = Mutex<(entries: [String: Entry], generation: Int)>(([:], 0))

    var generation: Int { state.withLock { $0.generation } }

    func entry(_ key: String, at now: Timestamp) -> Entry? {
        guard let entry = state.withLock({ $0.entries[key] }),
            now.millisecondsSince1970 - entry.cachedAt.millisecondsSince1970 < Self.lifetime
        else { return nil }
        return entry
    }

    func store(_ key: String, caller: Caller, lastSeen: Timestamp, at now: Timestamp, ifStill generation: Int) {
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count >= Self.capacity { state.entries = [:] }
            state.entries[key] = Entry(caller: caller, lastSeen: lastSeen, cachedAt: now)
        }
    }

    func remove(_ key: String) {
        state.withLock { state in
            state.entries[key] = nil
            state.generation += 1
        }
    }

    func removeAll() {
        state.withLock { $0 = ([:], $0.generation + 1) }
    }
}
