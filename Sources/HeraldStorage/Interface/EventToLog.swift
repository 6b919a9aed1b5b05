import HeraldSchema
import Synchronization

/// An event to append to the event log: the log gives it its id.
public struct EventToLog: Sendable, Hashable {
    public var type: String
    public var data: String
    /// Who it is for, as ``PersistedEvent/audience`` keeps it.
    public var audience: String
    public var created: Timestamp

    public init(type: String, data: String, audience: String, created: Timestamp) {
        self.type = type
        self.data = data
        self.audience = audience
        self.created = created
    }
}

/// The ids the event log gave one append, known once its transaction has committed.
///
/// PostgreSQL sends an append with the commit and does not wait for it in between, so that the
/// transactions appending events are serialised (``StorageTransaction/appendEvents(_:)``) for
/// one round trip only; the ids arrive with the commit's answer. SQLite knows them at once.
public final class AppendedEventIDs: Sendable {
    private let state = Mutex<[Int64]?>(nil)
    /// The appends these ids join, in order, when they are made of several.
    private let parts: [AppendedEventIDs]

    package init() {
        parts = []
    }

    /// The ids of several appends, one after the other.
    package init(joining parts: [AppendedEventIDs]) {
        self.parts = parts
    }

    package func resolve(_ ids: [Int64]) {
        state.withLock { $0 = ids }
    }

    /// The ids, in the order the events were appended; nil until the transaction committed.
    public var values: [Int64]? {
        guard !parts.isEmpty else { return state.withLock { $0 } }
        var ids: [Int64] = []
        for part in parts {
            guard let values = part.values else { return nil }
            ids += values
        }
        return ids
    }
}
