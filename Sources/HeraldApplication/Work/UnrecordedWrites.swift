import Synchronization

/// The writes in progress that may change objects without recording the changes in the event
/// log, because no live query followed changes when they looked.
///
/// A write takes a ticket before it looks (``take(_:)``) and gives it back once its transaction
/// has ended, committed or not (``end(_:)``), or as soon as it records after all. A new live
/// query counts as following first and then waits (``drain()``) for every ticket taken before:
/// each of those writes either recorded its changes or has ended, so its changes are in the
/// snapshot read next. On SQLite one writer at a time made this hold without tickets; on
/// PostgreSQL a write that looked just before the query opened can commit just after its
/// snapshot.
final class UnrecordedWrites: Sendable {
    /// One write's place in line; it keeps the first number it takes across the attempts of a
    /// unit of work that runs again.
    final class Ticket: Sendable {
        fileprivate let number = Mutex<Int?>(nil)
    }

    private struct State {
        var next = 0
        var open: Set<Int> = []
        var waiters: [(before: Int, continuation: CheckedContinuation<Void, Never>)] = []

        /// The waiters every ticket below whose mark has ended.
        mutating func ready() -> [CheckedContinuation<Void, Never>] {
            let oldest = open.min() ?? next
            var ready: [CheckedContinuation<Void, Never>] = []
            waiters.removeAll { waiter in
                guard waiter.before <= oldest else { return false }
                ready.append(waiter.continuation)
                return true
            }
            return ready
        }
    }

    private let state = Mutex(State())

    /// Gives `ticket` a number unless it has one.
    func take(_ ticket: Ticket) {
        state.withLock { state in
            ticket.number.withLock { number in
                guard number == nil else { return }
                number = state.next
                state.open.insert(state.next)
                state.next += 1
            }
        }
    }

    /// Gives `ticket`'s number back (nothing if it has none) and wakes the waiters it held.
    func end(_ ticket: Ticket) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            let taken = ticket.number.withLock { number in
                defer { number = nil }
                return number
            }
            guard let taken else { return [] }
            state.open.remove(taken)
            return state.ready()
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once every ticket taken before this call has been given back.
    func drain() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                let mark = state.next
                guard let oldest = state.open.min(), oldest < mark else { return true }
                state.waiters.append((mark, continuation))
                return false
            }
            if now { continuation.resume() }
        }
    }
}
