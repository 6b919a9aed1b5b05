import HeraldSchema
import HeraldStorage
import Synchronization

/// Who belongs to each group, and which groups each user acts as, through nested groups,
/// cached between changes.
///
/// `sendEvent` to a group reads its users here instead of walking the database on every send,
/// and every transaction of a signed-in user reads its groups here instead of with a query.
/// Every commit that writes a `Group` or a `User` clears it (on a shared database, that of any
/// node, through its commit notice). A transaction stores what it read only if no commit
/// cleared the cache since before it began (``generation``, taken before its snapshot): one
/// whose snapshot predates such a commit would otherwise keep a left group's rights in the
/// cache until the next change.
package final class MembershipCache: Sendable {
    private struct State {
        var users: [String: Set<String>] = [:]
        var principals: [String: [String]] = [:]
        var generation = 0
    }
    private let state = Mutex(State())

    package func invalidate() {
        state.withLock { $0 = State(users: [:], principals: [:], generation: $0.generation + 1) }
    }

    /// How many times the cache was cleared: taken before a transaction begins, it tells
    /// whether what the transaction reads may be stored.
    package var generation: Int { state.withLock { $0.generation } }

    /// The principals `user` acts as (itself first, then its groups), computing them with
    /// `load` on a miss, and caching them unless the cache was cleared since `generation`.
    package func principals(of user: String, asOf generation: Int, load: () throws -> [String]) rethrows
        -> [String]
    {
        if let cached = state.withLock({ $0.principals[user] }) { return cached }
        let principals = try load()
        state.withLock { if $0.generation == generation { $0.principals[user] = principals } }
        return principals
    }

    /// The users of `group`, computing them with `load` on a miss, and caching them unless the
    /// cache was cleared since `generation`.
    package func users(of group: String, asOf generation: Int, load: () throws -> Set<String>) rethrows
        -> Set<String>
    {
        if let cached = state.withLock({ $0.users[group] }) { return cached }
        let users = try load()
        state.withLock { if $0.generation == generation { $0.users[group] = users } }
        return users
    }
}
