import HTTPTypes
import HeraldSchema
import HeraldStorage
import Synchronization

/// Structr's resource access grants: a `ResourceAccess` object whose `signature` matches the
/// request must carry the bit for the caller's state and method. Admins and the superuser skip
/// the check. Grants are cached; `invalidate()` (called after every commit that writes
/// `ResourceAccess`) makes the next request read them again.
public final class ResourceAccessPolicy: AccessPolicy {
    let storage: any StorageBackend
    /// The grants by signature: the read of them, under way or done. `invalidate()` drops it, so a
    /// read that raced a change is never handed to a caller that asks after it.
    private let cache = Mutex<Grants?>(nil)

    private typealias Grants = Task<[String: Int64], any Error>

    public init(storage: any StorageBackend) {
        self.storage = storage
    }

    /// Forgets the cached grants.
    public func invalidate() {
        cache.withLock { $0 = nil }
    }

    public func authorize(_ caller: Caller, _ operation: RESTOperation) async throws {
        if caller.isAdmin { return }
        let grants = try await loaded()
        guard let flags = grants[operation.signature],
            flags & Self.bit(operation.method, authenticated: caller.isAuthenticated) != 0
        else { throw RESTError.accessDenied() }
    }

    /// The grants: cached, or read once for every caller that asks while the cache is empty (a
    /// thousand streams opening on a fresh server wait for one read, not a thousand).
    func loaded() async throws -> [String: Int64] {
        let storage = self.storage
        let grants = cache.withLock { cache in
            if let grants = cache { return grants }
            let read = Grants { try await Self.read(storage) }
            cache = read
            return read
        }
        do {
            return try await grants.value
        } catch {
            // A failed read is not kept: the next caller reads again.
            cache.withLock { if $0 == grants { $0 = nil } }
            throw error
        }
    }

    private static func read(_ storage: any StorageBackend) async throws -> [String: Int64] {
        try await storage.read { tx in
            try tx.fetch(EntityQuery(type: BuiltInType.resourceAccess)).reduce(into: [String: Int64]()) {
                grants,
                grant in
                guard let signature = grant.values["signature"]?.stringValue else { return }
                grants[signature, default: 0] |= grant.values["flags"]?.intValue ?? 0
            }
        }
    }

    /// Structr's flag bits: `AUTH_USER_GET = 1`, `NON_AUTH_USER_GET = 16`, and so on.
    public static func bit(_ method: HTTPRequest.Method, authenticated: Bool) -> Int64 {
        let (user, anonymous): (Int64, Int64)
        switch method {
        case .get: (user, anonymous) = (1, 16)
        case .put: (user, anonymous) = (2, 32)
        case .post: (user, anonymous) = (4, 64)
        case .delete: (user, anonymous) = (8, 128)
        case .options: (user, anonymous) = (256, 512)
        case .head: (user, anonymous) = (1024, 2048)
        case .patch: (user, anonymous) = (4096, 8192)
        default: return 0
        }
        return authenticated ? user : anonymous
    }
}
