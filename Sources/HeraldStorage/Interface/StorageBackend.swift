import HeraldSchema

/// An entity as storage holds it: property and system values in canonical JSON form.
///
/// Relationship values are not part of it; read them with `StorageTransaction.related(_:of:)`.
public struct StoredEntity: Sendable, Hashable {
    public var type: String
    public var id: String
    /// Property values by name, `createdDate`, `lastModifiedDate`, `owner` (a user id) and the
    /// visibility flags included. Absent and `null` both mean no value.
    public var values: [String: JSONValue]

    public init(type: String, id: String, values: [String: JSONValue]) {
        self.type = type
        self.id = id
        self.values = values
    }
}

/// A reference to a stored object.
public struct EntityReference: Sendable, Hashable {
    public var type: String
    public var id: String

    public init(type: String, id: String) {
        self.type = type
        self.id = id
    }
}

/// A storage backend: SQLite now, PostgreSQL later. Callers see only this interface.
///
/// Transaction bodies are synchronous: hooks run JavaScript on a dedicated engine thread and
/// call storage from there, so a transaction must be usable without suspension points. The
/// async entry points run the body on a thread the backend owns; the `…Blocking` ones run it on
/// the calling thread, which must be a dedicated thread (never Swift's shared executor).
/// A PostgreSQL backend keeps one connection per transaction and waits on it the same way.
public protocol StorageBackend: Sendable {
    /// Brings the database to `schema`: creates what is new, refuses data loss unless allowed.
    /// Every migration starts a new schema generation, even one that changes no table, and
    /// transactions that begin after it commits see `schema` as theirs.
    func migrate(to schema: Schema, allowDestructive: Bool) async throws -> MigrationReport

    /// Runs `body` in a read-only snapshot.
    func read<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T

    /// Runs `body` in a write transaction; a thrown error rolls everything back.
    func write<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T

    /// `write` on the calling (dedicated) thread.
    func writeBlocking<T>(_ body: (any StorageTransaction) throws -> T) throws -> T

    /// `read` on the calling (dedicated) thread.
    func readBlocking<T>(_ body: (any StorageTransaction) throws -> T) throws -> T

    /// Logged events with ids in `id+1 ... last`, oldest first, at most `limit`, read by one
    /// statement that needs no transaction around it (PostgreSQL runs it alone).
    func events(after id: Int64, through last: Int64, limit: Int) async throws -> [PersistedEvent]

    /// `events(after:through:limit:)` on the calling (dedicated) thread.
    func eventsBlocking(after id: Int64, through last: Int64, limit: Int) throws -> [PersistedEvent]

    /// Closes the database; later calls fail.
    func close() throws
}

extension StorageBackend {
    public func events(after id: Int64, through last: Int64, limit: Int) async throws -> [PersistedEvent] {
        try await read { tx in try tx.events(after: id, through: last, limit: limit) }
    }

    public func eventsBlocking(after id: Int64, through last: Int64, limit: Int) throws -> [PersistedEvent] {
        try readBlocking { tx in try tx.events(after: id, through: last, limit: limit) }
    }
}

/// Operations available inside a transaction.
public protocol StorageTransaction: AnyObject {
    /// The schema this transaction's tables were migrated to: one for its whole life, whatever
    /// a reload migrates meanwhile.
    var schema: Schema { get }

    /// The migration generation of `schema`; a later migration has a higher one.
    var schemaGeneration: Int64 { get }

    /// The object of `type` with `id`, if it exists.
    func fetch(type: String, id: String) throws -> StoredEntity?

    /// The object as this transaction last inserted or updated it, for use after the commit;
    /// nil if it did not write it.
    func written(type: String, id: String) -> WrittenEntity?

    /// Takes `entity` as its object's stored state in this transaction instead of reading it:
    /// for an object another transaction just wrote (``written(type:id:)``).
    func assume(_ entity: StoredEntity)

    /// The objects matching `query`, sorted and paged.
    func fetch(_ query: EntityQuery) throws -> [StoredEntity]

    /// How many objects match `query` (ignoring its paging).
    func count(_ query: EntityQuery) throws -> Int

    /// Whether any object of `type` has `property` equal to `value`, other than `excluding`.
    func exists(type: String, property: String, value: JSONValue, excluding id: String?) throws -> Bool

    /// Stores a new object; its values must be canonical (see `PropertyDefinition.coerce`).
    func insert(_ entity: StoredEntity) throws

    /// Sets the given values of an existing object.
    func update(type: String, id: String, values: [String: JSONValue]) throws

    /// Deletes an object and every link it is part of.
    func delete(type: String, id: String) throws

    /// The objects at the other end of `end` from the object `id`, in link order.
    func related(_ end: RelationshipEnd, of id: String) throws -> [EntityReference]

    /// Links `source` to `target` through `relationship` (no effect if already linked).
    func link(_ relationship: Relationship, source: String, target: EntityReference) throws

    /// Removes links through `relationship`: those of `source`, of `target`, or the one pair.
    func unlink(_ relationship: Relationship, source: String?, target: String?) throws

    /// The permissions any of `principals` holds on `node` through explicit grants.
    func permissions(on node: String, for principals: [String]) throws -> Set<Permission>

    /// Every explicit grant on `node`: each principal with what it holds, ordered by principal.
    func grants(on node: String) throws -> [(principal: String, permissions: Set<Permission>)]

    /// Adds `permissions` for `principal` on `node`.
    func grant(_ permissions: Set<Permission>, to principal: String, on node: String) throws

    /// Takes `permissions` from `principal` on `node`.
    func revoke(_ permissions: Set<Permission>, from principal: String, on node: String) throws

    /// Appends events to the event log, in order. Ids increase strictly in commit order and
    /// are never handed out twice; they are known once the transaction has committed (run
    /// nothing after this that needs them: it would only cost PostgreSQL a round trip).
    func appendEvents(_ events: [EventToLog]) throws -> AppendedEventIDs

    /// The newest `limit` logged events, oldest first.
    func recentEvents(limit: Int) throws -> [PersistedEvent]

    /// Logged events with ids in `id+1 ... last`, oldest first, at most `limit`.
    func events(after id: Int64, through last: Int64, limit: Int) throws -> [PersistedEvent]

    /// Drops logged events beyond the newest `keepingNewest` and those created before
    /// `olderThan`, at most `batch` of them; returns the newest id dropped, if any. The newest
    /// event's row is kept even when it is past the limits (so ids are never reused); it is
    /// reported as dropped.
    func pruneEvents(keepingNewest: Int, olderThan: Timestamp, atMost batch: Int) throws -> Int64?

    /// The login session stored under `key` (a hash of the session id, never the id itself).
    func session(_ key: String) throws -> LoginSession?

    /// Stores or replaces a login session.
    func saveSession(_ session: LoginSession) throws

    /// Ends a login session.
    func deleteSession(_ key: String) throws

    /// Ends every session idle since before `time`; returns how many.
    @discardableResult
    func deleteSessions(idleSince time: Timestamp) throws -> Int

    /// Records which users have open streams on `node` (a process sharing the database):
    /// `adding` now do, `removing` no longer do, and the node was alive at `time`. Drops the
    /// presence of nodes not seen since `expiredBefore`.
    func recordPresence(
        node: String,
        adding: Set<String>,
        removing: Set<String>,
        at time: Timestamp,
        expiredBefore: Timestamp
    ) throws

    /// Forgets every user `node` recorded (it is shutting down).
    func forgetPresence(node: String) throws

    /// Whether a node other than `node`, seen since `seenSince`, has an open stream for one of `users`.
    func isPresent(anyOf users: Set<String>, otherThan node: String, seenSince: Timestamp) throws -> Bool

    /// Whether the database holds no objects at all.
    func isEmpty() throws -> Bool

    /// A value from the backend's own key-value table.
    func metadata(_ key: String) throws -> String?

    /// Stores a value in the backend's own key-value table.
    func setMetadata(_ key: String, _ value: String) throws

    /// Claims `key` for this transaction: true if no transaction of any process sharing the
    /// database claimed it before (so of several nodes one does a job once), false if one did.
    /// Claims made before `forgetBefore` are dropped.
    func claim(_ key: String, forgetBefore: Timestamp) throws -> Bool

    /// Runs `action` once this transaction has committed; never if it rolls back.
    func afterCommit(_ action: @escaping @Sendable () -> Void)

    /// The objects this transaction changed so far, each once, in the order first changed.
    var changes: [ObjectChange] { get }

    /// The newest id in the event log as this transaction sees it (0 when it is empty).
    func newestEventID() throws -> Int64
}

/// A login session: which user it belongs to and when it was last used.
public struct LoginSession: Sendable, Hashable {
    /// A hash of the session id the client holds.
    public var key: String
    public var userID: String
    public var created: Timestamp
    public var lastSeen: Timestamp

    public init(key: String, userID: String, created: Timestamp, lastSeen: Timestamp) {
        self.key = key
        self.userID = userID
        self.created = created
        self.lastSeen = lastSeen
    }
}

/// A server-sent event as the event log keeps it.
public struct PersistedEvent: Sendable, Hashable {
    public var id: Int64
    public var type: String
    public var data: String
    /// Who it was for, as JSON (`{"users": [...]}`, `{"authenticated": true, "anonymous": false}`, `{"channel": "..."}` or `{"changes": true}`).
    public var audience: String
    public var created: Timestamp

    public init(id: Int64, type: String, data: String, audience: String, created: Timestamp) {
        self.id = id
        self.type = type
        self.data = data
        self.audience = audience
        self.created = created
    }
}

/// What a migration did.
public struct MigrationReport: Sendable, Hashable {
    /// One line per change, in the order applied.
    public var changes: [String]
    /// The schema generation the migration started.
    public var generation: Int64

    public init(changes: [String] = [], generation: Int64 = 0) {
        self.changes = changes
        self.generation = generation
    }
}

/// A schema change that would lose data and was not allowed.
public struct DestructiveMigrationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// One line per refused change.
    public var changes: [String]

    public init(changes: [String]) { self.changes = changes }

    public var description: String {
        "the schema change would lose data and was refused (start with --allow-destructive-migrations to apply it):\n"
            + changes.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// A backend several Herald processes share (PostgreSQL): each learns at once what the others
/// commit that its memory must follow.
public protocol SharedStorageBackend: StorageBackend {
    /// Calls `notice` for every commit of any process (this one's included) that appended
    /// events, changed objects or ended a login session, and with ``CommitNotice/reconnected``
    /// first and after each reconnection, when notices may have been missed. Returns when the
    /// task is cancelled; throws when the feed's connection fails (call it again to reconnect).
    func followCommits(_ notice: @escaping @Sendable (CommitNotice) async -> Void) async throws
}

/// What a commit on a shared database tells every process.
public enum CommitNotice: Sendable, Hashable {
    /// The feed (re)connected: anything may have been missed.
    case reconnected
    /// Events were appended, the newest with this id.
    case events(through: Int64)
    /// Objects of these types changed.
    case changed(types: Set<String>)
    /// The login session stored under this key ended.
    case sessionEnded(key: String)
}
