import HeraldSchema
import HeraldStorage
import Synchronization

/// Who belongs to each group, and which groups each user acts as, through nested groups,
/// cached between changes.
///
/// `sendEvent` to a group reads its users here instead of walking the database on every send,
/// and every transaction of a signed-in user reads its groups here instead of with a query.
/// Every commit that writes a `Group` or a `User` clears it (on a shared database, that of any
/// node, through its commit notice); a generation counter keeps a read that raced such a
/// commit from storing what it saw.
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

    /// The principals `user` acts as (itself first, then its groups), computing (and caching)
    /// them with `load` on a miss.
    package func principals(of user: String, load: () throws -> [String]) rethrows -> [String] {
        let (cached, generation) = state.withLock { ($0.principals[user], $0.generation) }
        if let cached { return cached }
        let principals = try load()
        state.withLock { if $0.generation == generation { $0.principals[user] = principals } }
        return principals
    }

    /// The users of `group`, computing (and caching) them with `load` on a miss.
    package func users(of group: String, load: () throws -> Set<String>) rethrows -> Set<String> {
        let (cached, generation) = state.withLock { ($0.users[group], $0.generation) }
        if let cached { return cached }
        let users = try load()
        state.withLock { if $0.generation == generation { $0.users[group] = users } }
        return users
    }
}
