import HeraldSchema
import HeraldStorage

extension Audience {
    /// The JSON form kept in storage.
    var stored: String {
        switch self {
        case .users(let users): JSONValue.object(["users": .array(users.sorted().map(JSONValue.string))]).jsonString
        case .broadcast(let authenticated, let anonymous):
            JSONValue.object(["authenticated": .bool(authenticated), "anonymous": .bool(anonymous)]).jsonString
        }
    }

    init?(stored: String) {
        guard case .object(let object) = try? JSONValue(parsing: stored) else { return nil }
        if case .array(let users)? = object["users"] {
            self = .users(Set(users.compactMap(\.stringValue)))
        } else if case .bool(let authenticated)? = object["authenticated"],
            case .bool(let anonymous)? = object["anonymous"]
        {
            self = .broadcast(authenticated: authenticated, anonymous: anonymous)
        } else {
            return nil
        }
    }
}

extension EventHub {
    /// Reads the history kept in storage back into the hub (at start-up).
    public func restore(from storage: any StorageBackend) async throws {
        let limits = self.limits
        let events = try await storage.read { tx in try tx.recentEvents(limit: limits.historyCount) }
        let oldest = Timestamp.now.millisecondsSince1970 - limits.historyAge.components.seconds * 1000
        restore(
            events.compactMap { stored in
                guard stored.created.millisecondsSince1970 >= oldest, stored.id > 0,
                    let audience = Audience(stored: stored.audience)
                else { return nil }
                return Entry(
                    event: ServerEvent(id: UInt64(stored.id), type: stored.type, data: stored.data),
                    audience: audience,
                    created: stored.created
                )
            }
        )
    }

    /// Writes the events published since the last call to storage, in one transaction, and drops
    /// what the history no longer keeps.
    public func save(to storage: any StorageBackend) async throws {
        let entries = takeUnsaved()
        guard !entries.isEmpty else { return }
        let limits = self.limits
        let events = entries.map {
            PersistedEvent(
                id: Int64($0.event.id),
                type: $0.event.type,
                data: $0.event.data,
                audience: $0.audience.stored,
                created: $0.created
            )
        }
        let oldest = Timestamp(
            millisecondsSince1970: Timestamp.now.millisecondsSince1970 - limits.historyAge.components.seconds * 1000
        )
        do {
            try await storage.write { tx in
                try tx.appendEvents(events)
                try tx.pruneEvents(keepingNewest: limits.historyCount, olderThan: oldest)
            }
        } catch {
            returnUnsaved(entries)
            throw error
        }
    }
}
