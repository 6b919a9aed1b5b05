import Synchronization

/// The newest event id of this process's recent commits that appended events, so that the
/// notice each such commit sends every process is skipped here: the committing thread hands
/// its events to the fan-out itself, and reading them back from the log would only cost a read.
///
/// An id is noted when the append's answer arrives, which PostgreSQL sends before it commits and
/// so, nearly always, before the notice reaches this process; a notice that wins the race is
/// read as any other. A commit that fails forgets its id, so that a notice of a commit whose
/// answer was lost still brings its events. At most ``capacity`` ids are kept (a notice lost
/// while the listening connection was down leaves its id behind until it is pushed out).
final class RecentAppends: Sendable {
    static let capacity = 4096
    private let state = Mutex<(ids: Set<Int64>, order: [Int64], next: Int)>(([], [], 0))

    /// Notes the newest id of a commit of this process.
    func note(_ id: Int64) {
        state.withLock { state in
            guard state.ids.insert(id).inserted else { return }
            if state.order.count < Self.capacity {
                state.order.append(id)
            } else {
                state.ids.remove(state.order[state.next])
                state.order[state.next] = id
                state.next = (state.next + 1) % Self.capacity
            }
        }
    }

    /// Whether `id` was noted; it is forgotten either way (each notice comes once).
    func take(_ id: Int64) -> Bool {
        state.withLock { $0.ids.remove(id) != nil }
    }

    /// Forgets `id`: its commit failed, or may have.
    func forget(_ id: Int64) {
        _ = take(id)
    }

    /// Forgets every id (the listening connection reconnected: its notices are gone).
    func removeAll() {
        state.withLock { state in state = ([], [], 0) }
    }
}
