import Crypto
import Foundation
import HeraldApplication
import HeraldSchema
import HeraldStorage
import Hummingbird
import Metrics
import NIOPosix
import Synchronization

/// Checks a user's name (or e-mail) and password, with a lockout after repeated failures.
///
/// Every failure gives the same answer, whether the name exists, the password is wrong or the
/// account is locked, and an unknown name costs the same bcrypt work as a known one.
///
/// - Failures lock the **account** (a user found by name or e-mail is one account), so guessing
///   by e-mail counts against the same lock as guessing by name.
/// - The superuser is not stored and never locked; guessing its password is bounded by the
///   per-client limit, which applies to every login: a client address with more than
///   `clientMaxFailures` failures in `clientWindow` gets 429 without any password work.
/// - Credentials that checked out are remembered for `cacheLifetime` (as a SHA-256 digest, with
///   the stored hash they matched), so a client sending `X-User`/`X-Password` with every request
///   costs one bcrypt verification per lifetime, not one per request.
public final class UserCredentials: Sendable {
    /// Limits of the password check.
    public struct Configuration: Sendable {
        /// Failures in a row that lock an account.
        public var maxFailures = 5
        /// How long a locked account stays locked.
        public var lockout: Duration = .seconds(300)
        /// Failures one client address may have within `clientWindow` before it gets 429.
        public var clientMaxFailures = 30
        public var clientWindow: Duration = .seconds(60)
        /// How long verified credentials are taken without bcrypt.
        public var cacheLifetime: Duration = .seconds(60)
        /// Most verified credentials remembered at once.
        public var cacheCapacity = 10_000

        public init() {}
    }

    struct Lock {
        var count = 0
        var lockedUntil: ContinuousClock.Instant?
    }

    struct ClientFailures {
        var windowStart: ContinuousClock.Instant
        var count: Int
    }

    struct Verified {
        var storedHash: String
        var expires: ContinuousClock.Instant
    }

    struct State {
        var accounts: [String: Lock] = [:]
        var clients: [String: ClientFailures] = [:]
        var verified: [SHA256Digest: Verified] = [:]
    }

    let storage: any StorageBackend
    let hasher: any PasswordHasher
    let superuserPassword: String?
    let configuration: Configuration
    /// A hash to verify against when the name is unknown, so timing does not tell.
    let decoy: String
    private let state = Mutex(State())
    private let passwordChecks: Counter
    private let throttled: Counter

    public init(
        storage: any StorageBackend,
        hasher: any PasswordHasher,
        superuserPassword: String?,
        configuration: Configuration = Configuration(),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) {
        self.passwordChecks = Counter(label: "herald_password_checks_total", factory: metrics)
        self.throttled = Counter(label: "herald_logins_throttled_total", factory: metrics)
        self.storage = storage
        self.hasher = hasher
        self.superuserPassword = superuserPassword
        self.configuration = configuration
        self.decoy = hasher.hash("decoy password, never valid")
    }

    static var failure: RESTError { RESTError(.unauthorized, "Wrong username or password") }

    /// The caller these credentials identify, or a 401 `RESTError` (429 for a client past its
    /// failure limit). `client` is the caller's address.
    public func verify(name: String?, eMail: String?, password: String, client: String?) async throws -> Caller {
        let login = (name ?? eMail ?? "").lowercased()
        guard !login.isEmpty else { try await refuse(client: client) }
        let client = client ?? "unknown"
        if name == "superuser" {
            try refuseThrottled(client)
            guard let superuserPassword, Self.constantTimeEqual(password, superuserPassword) else {
                recordFailure(account: nil, client: client)
                throw Self.failure
            }
            return .superuser
        }
        let (key, value) = name.map { ("name", $0) } ?? ("eMail", eMail ?? "")
        let user = try await storage.read { tx in
            try tx.fetch(EntityQuery(type: BuiltInType.user, filter: .compare(key, .equal, .string(value)), limit: 1))
                .first
        }
        // One account, however it is named; unknown names are limited by the string tried.
        let account = user.map { "user:\($0.id)" } ?? "login:\(key):\(login)"
        let hash = user?.values["password"]?.stringValue
        let digest = Self.digest(account: account, password: password, hash: hash)
        if let user, let hash, !isLocked(account), isCached(digest, hash: hash) { return Self.caller(user) }
        try refuseThrottled(client)
        if isLocked(account) {
            _ = try await check(password, against: decoy)
            throw Self.failure
        }
        let matches = try await check(password, against: hash ?? decoy)
        guard let user, let hash, !password.isEmpty, matches else {
            recordFailure(account: account, client: client)
            throw Self.failure
        }
        remember(digest, hash: hash, account: account)
        return Self.caller(user)
    }

    /// Refuses credentials that name no account (a login body of the wrong shape) with the same
    /// 401, after the same bcrypt work, as a wrong password, and counts the client's failure.
    public func refuse(client: String?) async throws -> Never {
        let client = client ?? "unknown"
        try refuseThrottled(client)
        _ = try await check("", against: decoy)
        recordFailure(account: nil, client: client)
        throw Self.failure
    }

    /// The caller for a stored user, as the row says now (a cached check never keeps old rights).
    static func caller(_ user: StoredEntity) -> Caller {
        .user(
            id: user.id,
            name: user.values["name"]?.stringValue,
            isAdmin: user.values["isAdmin"]?.boolValue ?? false
        )
    }

    /// bcrypt off the shared executor threads.
    func check(_ password: String, against hash: String) async throws -> Bool {
        passwordChecks.increment()
        let hasher = self.hasher
        return try await NIOThreadPool.singleton.runIfActive { hasher.verify(password, hash: hash) }
    }

    static func digest(account: String, password: String, hash: String?) -> SHA256Digest {
        var sha = SHA256()
        for part in [account, password, hash ?? ""] {
            sha.update(data: Data(part.utf8))
            sha.update(data: Data([0]))
        }
        return sha.finalize()
    }

    /// Whether these credentials were verified recently against the hash still stored.
    func isCached(_ digest: SHA256Digest, hash: String) -> Bool {
        state.withLock { state in
            guard let entry = state.verified[digest] else { return false }
            guard entry.expires > .now, entry.storedHash == hash else {
                state.verified[digest] = nil
                return false
            }
            return true
        }
    }

    func remember(_ digest: SHA256Digest, hash: String, account: String) {
        let now = ContinuousClock.now
        state.withLock { state in
            state.accounts[account] = nil
            if state.verified.count >= configuration.cacheCapacity {
                state.verified = state.verified.filter { $0.value.expires > now }
                if state.verified.count >= configuration.cacheCapacity { state.verified.removeAll() }
            }
            state.verified[digest] = Verified(
                storedHash: hash,
                expires: now + configuration.cacheLifetime
            )
        }
    }

    func isLocked(_ account: String) -> Bool {
        state.withLock { state in
            guard let until = state.accounts[account]?.lockedUntil else { return false }
            if until > .now { return true }
            state.accounts[account] = nil
            return false
        }
    }

    /// 429 for a client past its failure limit, before any password work.
    func refuseThrottled(_ client: String) throws {
        let retryAfter: Duration? = state.withLock { state in
            guard let entry = state.clients[client] else { return nil }
            let windowEnd = entry.windowStart + configuration.clientWindow
            if windowEnd <= .now {
                state.clients[client] = nil
                return nil
            }
            return entry.count >= configuration.clientMaxFailures ? windowEnd - .now : nil
        }
        guard let retryAfter else { return }
        throttled.increment()
        let seconds = max(1, Int(retryAfter.components.seconds) + 1)
        var headers = HTTPFields()
        headers[.retryAfter] = "\(seconds)"
        throw RESTError(
            .tooManyRequests,
            "Too many failed logins from this address; try again in \(seconds) s",
            headers: headers
        )
    }

    func recordFailure(account: String?, client: String) {
        let now = ContinuousClock.now
        state.withLock { state in
            if let account {
                var lock = state.accounts[account] ?? Lock()
                lock.count += 1
                if lock.count >= configuration.maxFailures {
                    lock = Lock(count: 0, lockedUntil: now + configuration.lockout)
                }
                state.accounts[account] = lock
            }
            var entry = state.clients[client] ?? ClientFailures(windowStart: now, count: 0)
            if entry.windowStart + configuration.clientWindow <= now {
                entry = ClientFailures(windowStart: now, count: 0)
            }
            entry.count += 1
            state.clients[client] = entry
            if state.clients.count > 100_000 {
                state.clients = state.clients.filter { $0.value.windowStart + configuration.clientWindow > now }
            }
        }
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
