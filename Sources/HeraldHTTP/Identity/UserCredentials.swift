import HeraldSchema
import HeraldStorage
import Hummingbird
import NIOPosix
import Synchronization

/// Checks a user's name (or e-mail) and password, with a lockout after repeated failures.
///
/// Every failure gives the same answer, whether the name exists, the password is wrong or the
/// account is locked, and an unknown name costs the same bcrypt work as a known one.
public final class UserCredentials: Sendable {
    let storage: any StorageBackend
    let hasher: any PasswordHasher
    let superuserPassword: String?
    let maxFailures: Int
    let lockout: Duration
    /// A hash to verify against when the name is unknown, so timing does not tell.
    let decoy: String
    private let failures = Mutex<[String: (count: Int, lockedUntil: ContinuousClock.Instant?)]>([:])

    public init(
        storage: any StorageBackend,
        hasher: any PasswordHasher,
        superuserPassword: String?,
        maxFailures: Int = 5,
        lockout: Duration = .seconds(300)
    ) {
        self.storage = storage
        self.hasher = hasher
        self.superuserPassword = superuserPassword
        self.maxFailures = maxFailures
        self.lockout = lockout
        self.decoy = hasher.hash("decoy password, never valid")
    }

    static var failure: RESTError { RESTError(.unauthorized, "Wrong username or password") }

    /// The caller these credentials identify, or a 401 `RESTError`.
    public func verify(name: String?, eMail: String?, password: String) async throws -> Caller {
        let login = (name ?? eMail ?? "").lowercased()
        guard !login.isEmpty else { throw Self.failure }
        if isLocked(login) {
            _ = try await check(password, against: decoy)
            throw Self.failure
        }
        if name == "superuser" {
            guard let superuserPassword, Self.constantTimeEqual(password, superuserPassword) else {
                recordFailure(login)
                throw Self.failure
            }
            return .superuser
        }
        let (key, value) = name != nil ? ("name", name!) : ("eMail", eMail!)
        let user = try await storage.read { tx in
            try tx.fetch(EntityQuery(type: BuiltInType.user, filter: .compare(key, .equal, .string(value)), limit: 1))
                .first
        }
        let hash = user?.values["password"]?.stringValue
        let matches = try await check(password, against: hash ?? decoy)
        guard let user, hash != nil, !password.isEmpty, matches else {
            recordFailure(login)
            throw Self.failure
        }
        failures.withLock { _ = $0.removeValue(forKey: login) }
        return .user(
            id: user.id,
            name: user.values["name"]?.stringValue,
            isAdmin: user.values["isAdmin"]?.boolValue ?? false
        )
    }

    /// bcrypt off the shared executor threads.
    func check(_ password: String, against hash: String) async throws -> Bool {
        let hasher = self.hasher
        return try await NIOThreadPool.singleton.runIfActive { hasher.verify(password, hash: hash) }
    }

    func isLocked(_ login: String) -> Bool {
        failures.withLock { entries in
            guard let until = entries[login]?.lockedUntil else { return false }
            if until > .now { return true }
            entries[login] = nil
            return false
        }
    }

    func recordFailure(_ login: String) {
        failures.withLock { entries in
            var entry = entries[login] ?? (0, nil)
            entry.count += 1
            if entry.count >= maxFailures { entry = (0, .now + lockout) }
            entries[login] = entry
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
