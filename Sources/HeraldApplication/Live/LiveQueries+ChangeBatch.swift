import HeraldEvents
import HeraldSchema
import HeraldStorage

extension LiveQueries {
    /// Change records from the log, object by object: the newest record's id for each changed
    /// object, the keys that changed, and whether rights moved.
    struct ChangeBatch: Sendable {
        /// One object's changes in the batch.
        struct Touched: Sendable {
            var logID: UInt64 = 0
            var keys: Set<String> = []
            var types: Set<String> = []
        }

        var touched: [String: Touched] = [:]
        /// The changed objects, in the order first changed.
        var order: [String] = []
        /// The newest record that can move objects in or out of sight without changing them.
        var rightsChanged: UInt64?
        /// The newest record in the batch.
        var newest: UInt64 = 0

        init(_ changes: some Sequence<(UInt64, ObjectChange)>) {
            for (logID, change) in changes {
                newest = max(newest, logID)
                if Self.movesRights(change) { rightsChanged = logID }
                if touched[change.id] == nil { order.append(change.id) }
                touched[change.id, default: Touched()].logID = logID
                touched[change.id]?.keys.formUnion(change.keys)
                touched[change.id]?.types.insert(change.type)
            }
        }

        /// The change records among hub entries.
        init(_ entries: [EventHub.Entry]) {
            self.init(
                entries.lazy.filter { $0.audience == .changes }.compactMap { entry in
                    ObjectChange(logData: entry.event.data).map { (entry.event.id, $0) }
                }
            )
        }

        /// The change records among events read from the log.
        init(_ stored: [PersistedEvent]) {
            self.init(
                stored.lazy.filter { $0.type == UnitOfWork.changeEventType && $0.id > 0 }.compactMap { event in
                    ObjectChange(logData: event.data).map { (UInt64(event.id), $0) }
                }
            )
        }

        /// Whether a query of `type` may see a difference.
        func concerns(_ type: String) -> Bool {
            rightsChanged != nil || touched.values.contains { $0.types.contains(type) || $0.types.contains("") }
        }

        /// Whether a change can move objects in or out of sight without changing them: group
        /// membership, a user's admin flag or groups, a user deleted (their objects lose their
        /// owner).
        static func movesRights(_ change: ObjectChange) -> Bool {
            switch change.type {
            case BuiltInType.group: change.keys.contains("members") || change.kind == .deleted
            case BuiltInType.user:
                change.kind == .deleted || change.keys.contains("groups") || change.keys.contains("isAdmin")
            default: false
            }
        }
    }
}
