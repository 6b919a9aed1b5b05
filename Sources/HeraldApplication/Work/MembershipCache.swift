import HeraldSchema
import HeraldStorage
import Synchronization

/// Who belongs to each group, through nested groups, cached between changes.
///
/// `sendEvent` to a group reads it here instead of walking the database on every send. Every
/// commit that writes a `Group` or a `User` clears it; a generation counter keeps a read that
/// raced such a commit from storing what it saw.
package final class MembershipCache: Sendable {
    private let state = Mutex<(users: [String: Set<String>], generation: Int)>(([:], 0))

    package func invalidate() {
        state.withLock { $0 = ([:], $0.generation + 1) }
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
