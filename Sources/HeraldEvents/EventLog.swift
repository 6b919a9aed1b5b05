import HeraldSchema
import HeraldStorage

/// The event log, the source of truth for events: `$.broadcastEvent` and `$.sendEvent` append
/// to it inside the transaction that raises them (a rollback leaves no row), ids come from it
/// in commit order, replay reads it, and pruning keeps it within `historyCount` and
/// `historyAge`. The hub's in-memory window is a cache of its newest entries.
public struct EventLog: Sendable {
    public let storage: any StorageBackend
    public let limits: EventHub.Limits
    /// The metadata key of the newest id pruned: replay cannot reach at or below it.
    static let droppedKey = "events.droppedThrough"
    /// Rows one prune transaction deletes at most.
    static let pruneBatch = 2000

    public init(storage: any StorageBackend, limits: EventHub.Limits) {
        self.storage = storage
        self.limits = limits
    }

    /// An event to append: what it says and whom it is for.
    public typealias Raised = (type: String, data: String, audience: Audience)

    /// Events appended in one transaction; they have their ids once it has committed.
    public struct Appended: Sendable {
        /// The events, with id 0.
        public let raised: [EventHub.Entry]
        let ids: AppendedEventIDs

        /// The events with the ids the log gave them; nil until the transaction committed.
        public var entries: [EventHub.Entry]? {
            guard let ids = ids.values, ids.count == raised.count else { return nil }
            return zip(raised, ids).map { entry, id in
                var entry = entry
                entry.event.id = UInt64(id)
                return entry
            }
        }
    }

    /// Appends `events` in `tx`, in order, in one statement.
    public static func append(_ events: [Raised], in tx: any StorageTransaction) throws -> Appended {
        let created = Timestamp.now
        let ids = try tx.appendEvents(
            events.map { EventToLog(type: $0.type, data: $0.data, audience: $0.audience.stored, created: created) }
        )
        let raised = events.map {
            EventHub.Entry(
                event: ServerEvent(id: 0, type: $0.type, data: $0.data),
                audience: $0.audience,
                created: created
            )
        }
        return Appended(raised: raised, ids: ids)
    }

    /// The oldest creation time replay still serves.
    var oldestKept: Timestamp {
        Timestamp(
            millisecondsSince1970: Timestamp.now.millisecondsSince1970 - limits.historyAge.components.seconds * 1000
        )
    }

    /// Logged entries with ids in `id+1 ... last` that are not past `historyAge`, oldest first.
    public func entries(after id: UInt64, through last: UInt64) async throws -> [EventHub.Entry] {
        guard last > id else { return [] }
        let (limit, oldest) = (limits.historyCount, oldestKept)
        let after = Int64(clamping: id)
        let through = Int64(clamping: last)
        let stored = try await storage.events(after: after, through: through, limit: limit)
        return stored.compactMap { Self.entry($0, notBefore: oldest) }
    }

    static func entry(_ stored: PersistedEvent, notBefore oldest: Timestamp) -> EventHub.Entry? {
        guard stored.created >= oldest, stored.id > 0, let audience = Audience(stored: stored.audience) else {
            return nil
        }
        return EventHub.Entry(
            event: ServerEvent(id: UInt64(stored.id), type: stored.type, data: stored.data),
            audience: audience,
            created: stored.created
        )
    }

    /// Drops one bounded batch past the limits, records how far it reached, and tells `hub`;
    /// returns whether it dropped anything (call again until it does not).
    @discardableResult
    public func prune(_ hub: EventHub) async throws -> Bool {
        let (count, oldest, batch) = (limits.historyCount, oldestKept, Self.pruneBatch)
        let dropped = try await storage.write { tx -> Int64? in
            guard let last = try tx.pruneEvents(keepingNewest: count, olderThan: oldest, atMost: batch) else {
                return nil
            }
            let before = Int64(try tx.metadata(Self.droppedKey) ?? "") ?? 0
            guard last > before else { return nil }  // no progress: done
            try tx.setMetadata(Self.droppedKey, String(last))
            return last
        }
        guard let dropped else { return false }
        hub.markDropped(through: UInt64(dropped))
        return true
    }

    /// At start-up: prunes what expired while the server was down, then gives the hub the
    /// newest entries as its window and the pruned mark, so a client whose id is older than
    /// what the log keeps gets `resync`, however long the server was down.
    public func restore(into hub: EventHub) async throws {
        while try await prune(hub) {}
        let (window, oldest, key) = (hub.limits.windowCount, oldestKept, Self.droppedKey)
        let (stored, mark, newest) = try await storage.read { tx in
            let recent = try tx.recentEvents(limit: window)
            return (recent, UInt64(try tx.metadata(key) ?? "") ?? 0, recent.last?.id ?? 0)
        }
        hub.restore(
            stored.compactMap { Self.entry($0, notBefore: oldest) },
            droppedThrough: mark,
            lastID: max(UInt64(max(0, newest)), mark)
        )
    }
}

extension Audience {
    /// The audience as JSON: what the log keeps, and what the admin monitor and the script
    /// console show.
    public var json: JSONValue {
        switch self {
        case .users(let users): ["users": .array(users.sorted().map(JSONValue.string))]
        case .broadcast(let authenticated, let anonymous):
            ["authenticated": .bool(authenticated), "anonymous": .bool(anonymous)]
        case .channel(let channel): ["channel": .string(channel)]
        case .changes: ["changes": true]
        }
    }

    /// The JSON form kept in the log.
    var stored: String { json.jsonString }

    init?(stored: String) {
        guard case .object(let object) = try? JSONValue(parsing: stored) else { return nil }
        if case .array(let users)? = object["users"] {
            self = .users(Set(users.compactMap(\.stringValue)))
        } else if case .string(let channel)? = object["channel"] {
            self = .channel(channel)
        } else if object["changes"] == .bool(true) {
            self = .changes
        } else if case .bool(let authenticated)? = object["authenticated"],
            case .bool(let anonymous)? = object["anonymous"]
        {
            self = .broadcast(authenticated: authenticated, anonymous: anonymous)
        } else {
            return nil
        }
    }
}
