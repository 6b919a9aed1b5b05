import HeraldSchema
import HeraldStorage
import Logging

/// Hands committed log entries to the hub in id order, whichever committing thread (or
/// process) gets there first.
///
/// SQLite has one writer, so its commits arrive in order with no gaps. On PostgreSQL the
/// transactions that raise events commit one after the other (the event log's lock), but the
/// second's thread may reach the hub before the first's, an id a rolled-back transaction took is
/// never used, and other processes commit too. So when entries arrive past a gap, the gap is
/// read from the log first: everything committed in it is delivered before them, and what comes
/// late is ignored (the hub takes each id once, in order). A read happens only for a gap.
///
/// No lock is needed: the newest id delivered only grows, and every batch handed to the hub
/// starts right after it (or overlaps it), so no id is ever skipped.
public final class LogFollower: Sendable {
    public let hub: EventHub
    let storage: any StorageBackend
    let logger: Logger
    /// Entries read from the log at most per catch-up read.
    static let batch = 1000

    public init(hub: EventHub, storage: any StorageBackend, logger: Logger = Logger(label: "herald.events")) {
        self.hub = hub
        self.storage = storage
        self.logger = logger
    }

    /// Delivers `entries` (one commit's, in id order) after whatever committed before them.
    /// Call it on a dedicated thread (it may read the log), right after the commit.
    public func deliver(_ entries: [EventHub.Entry]) {
        guard let first = entries.first?.event.id else { return }
        let newest = hub.newestID
        if first > newest + 1 { hub.deliver(gap(after: newest, before: first)) }
        hub.deliver(entries)
    }

    /// Delivers what any process committed up to `id`, or everything committed when nil: reads
    /// the log after the newest id delivered, on the backend's threads.
    public func catchUp(through id: Int64?) async {
        var newest = hub.newestID
        if let id, id <= Int64(clamping: newest) { return }
        let (through, batch) = (id ?? .max, Self.batch)
        while true {
            let after = Int64(clamping: newest)
            do {
                let stored = try await storage.events(after: after, through: through, limit: batch)
                hub.deliver(stored.compactMap(Self.entry))
                guard stored.count == batch, let last = stored.last else { return }
                newest = UInt64(last.id)
            } catch {
                logger.error("events after \(after) could not be read from the log for delivery: \(error)")
                return
            }
        }
    }

    /// The committed entries with ids between `after` and `before` (both excluded).
    private func gap(after: UInt64, before: UInt64) -> [EventHub.Entry] {
        do {
            let stored = try storage.eventsBlocking(
                after: Int64(clamping: after),
                through: Int64(clamping: before) - 1,
                limit: .max
            )
            return stored.compactMap(Self.entry)
        } catch {
            // The entries after the gap still go out; a reconnect's replay serves the gap.
            logger.error("events \(after + 1)...\(before - 1) could not be read from the log for delivery: \(error)")
            return []
        }
    }

    private static func entry(_ stored: PersistedEvent) -> EventHub.Entry? {
        EventLog.entry(stored, notBefore: Timestamp(millisecondsSince1970: 0))
    }
}
