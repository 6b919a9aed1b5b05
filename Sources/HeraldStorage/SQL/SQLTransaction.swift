import Foundation
import HeraldSchema

/// A transaction on either backend, in the SQL both speak; valid only inside the closure it was
/// given to. The backend's ``SQLConnection`` runs the statements.
final class SQLTransaction: StorageTransaction {
    let connection: any SQLConnection
    let schema: Schema
    let schemaGeneration: Int64
    private var journal = ChangeJournal()
    var changes: [ObjectChange] { journal.changes }
    private var dialect: SQLDialect { connection.dialect }

    /// Takes the migration generation of the transaction's snapshot first (``SQLConnection/schemaGeneration()``).
    init(connection: any SQLConnection, layout: Layout) throws {
        self.connection = connection
        self.schemaGeneration = try connection.schemaGeneration()
        self.schema = layout.schema(schemaGeneration)
    }

    /// The metadata key of the migration generation, raised by every migration.
    static let generationKey = "schema.generation"

    static func generation(_ connection: any SQLConnection) throws -> Int64 {
        var arguments = SQLArguments(connection.dialect)
        let sql = "SELECT value FROM _herald_meta WHERE key = \(arguments.add(generationKey))"
        return try connection.integer(sql, arguments) ?? 0
    }

    private func typeDefinition(_ name: String) throws -> TypeDefinition {
        guard let type = schema.types[name] else { throw StorageError.unknownType(name) }
        return type
    }

    /// An object's row as this transaction knows it: read, written (the write's answer, read
    /// when needed), deleted, or assumed.
    private enum KnownRow {
        /// The row (nil: none), and whether this transaction wrote it.
        case stored(StoredEntity?, written: Bool)
        /// A write's answer, not read yet.
        case written(PendingRows, TypeDefinition)
    }

    /// Rows this transaction read or wrote, by type and id. Its snapshot does not move, so a
    /// row it knows changes only by its own writes, which replace it here (and a user's
    /// deletion, which empties it: see ``delete(type:id:)``).
    private var known: [EntityReference: KnownRow] = [:]

    func fetch(type: String, id: String) throws -> StoredEntity? {
        let key = EntityReference(type: type, id: id)
        switch known[key] {
        case .stored(let entity, _): return entity
        case .written(let rows, let definition):
            let entity = try rows.read().first.map { decode($0, definition) }
            known[key] = .stored(entity, written: true)
            return entity
        case nil: break
        }
        let definition = try typeDefinition(type)
        var arguments = SQLArguments(dialect)
        let sql = "SELECT * FROM \(SQLName.table(type)) WHERE id = \(arguments.add(id))"
        let entity = try connection.rows(sql, arguments).first.map { decode($0, definition) }
        known[key] = .stored(entity, written: false)
        return entity
    }

    func written(type: String, id: String) -> WrittenEntity? {
        switch known[EntityReference(type: type, id: id)] {
        case .written(let rows, let definition):
            let committed = rows.committed
            return WrittenEntity { committed()?.first.map { Self.decode($0, definition) } }
        case .stored(let entity, written: true): return WrittenEntity { entity }
        default: return nil
        }
    }

    func assume(_ entity: StoredEntity) {
        known[EntityReference(type: entity.type, id: entity.id)] = .stored(entity, written: false)
    }

    func fetch(_ query: EntityQuery) throws -> [StoredEntity] {
        let definition = try typeDefinition(query.type)
        var sql = "SELECT * FROM \(SQLName.table(query.type))"
        var arguments = SQLArguments(dialect)
        if let filter = query.filter {
            sql += " WHERE " + (try SQLFilter(type: definition).sql(filter, &arguments))
        }
        var order: [String] = []
        for key in query.sort {
            guard
                key.property == SystemProperty.id || definition.property(named: key.property) != nil
                    || key.property == SystemProperty.owner
            else { throw StorageError.unknownProperty(type: query.type, property: key.property) }
            order.append("\(SQLName.quoted(key.property)) \(key.descending ? "DESC NULLS LAST" : "ASC NULLS LAST")")
        }
        order.append("id ASC")
        sql += " ORDER BY " + order.joined(separator: ", ")
        if let limit = query.limit {
            sql += " LIMIT \(max(0, limit)) OFFSET \(max(0, query.offset))"
        } else if query.offset > 0 {
            sql += dialect == .sqlite ? " LIMIT -1 OFFSET \(query.offset)" : " OFFSET \(query.offset)"
        }
        return try connection.rows(sql, arguments).map { decode($0, definition) }
    }

    func count(_ query: EntityQuery) throws -> Int {
        let definition = try typeDefinition(query.type)
        var sql = "SELECT COUNT(*) FROM \(SQLName.table(query.type))"
        var arguments = SQLArguments(dialect)
        if let filter = query.filter {
            sql += " WHERE " + (try SQLFilter(type: definition).sql(filter, &arguments))
        }
        return Int(try connection.integer(sql, arguments) ?? 0)
    }

    func exists(type: String, property: String, value: JSONValue, excluding id: String?) throws -> Bool {
        let definition = try typeDefinition(type)
        var arguments = SQLArguments(dialect)
        let bound = SQLArgument(value, for: definition.property(named: property)?.type ?? .string)
        var sql = "SELECT 1 FROM \(SQLName.table(type)) WHERE \(SQLName.quoted(property)) = \(arguments.add(bound))"
        if let id { sql += " AND id <> \(arguments.add(id))" }
        return try !connection.rows(sql + " LIMIT 1", arguments).isEmpty
    }

    func insert(_ entity: StoredEntity) throws {
        let definition = try typeDefinition(entity.type)
        var arguments = SQLArguments(dialect)
        var columns = ["id"]
        var placeholders = [arguments.add(entity.id)]
        for (name, value) in entity.values.sorted(by: { $0.key < $1.key }) {
            guard Self.isColumn(name, definition) else {
                throw StorageError.unknownProperty(type: entity.type, property: name)
            }
            columns.append(SQLName.quoted(name))
            placeholders.append(
                arguments.add(SQLArgument(value, for: definition.property(named: name)?.type ?? .string))
            )
        }
        let rows = try connection.writeReturning(
            """
            INSERT INTO \(SQLName.table(entity.type)) (\(columns.joined(separator: ", "))) \
            VALUES (\(placeholders.joined(separator: ", "))) RETURNING *
            """,
            arguments
        )
        known[EntityReference(type: entity.type, id: entity.id)] = .written(rows, definition)
        journal.record(type: entity.type, id: entity.id, .created, keys: entity.values.keys)
    }

    func update(type: String, id: String, values: [String: JSONValue]) throws {
        guard !values.isEmpty else { return }
        let definition = try typeDefinition(type)
        var assignments: [String] = []
        var arguments = SQLArguments(dialect)
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            guard Self.isColumn(name, definition) else {
                throw StorageError.unknownProperty(type: type, property: name)
            }
            let bound = SQLArgument(value, for: definition.property(named: name)?.type ?? .string)
            assignments.append("\(SQLName.quoted(name)) = \(arguments.add(bound))")
        }
        let sql = """
            UPDATE \(SQLName.table(type)) SET \(assignments.joined(separator: ", ")) WHERE id = \(arguments.add(id)) \
            RETURNING *
            """
        known[EntityReference(type: type, id: id)] = .written(try connection.writeReturning(sql, arguments), definition)
        journal.record(type: type, id: id, .updated, keys: values.keys)
    }

    func delete(type: String, id: String) throws {
        let definition = try typeDefinition(type)
        // The links go with the object: the objects at their other ends change too.
        for (_, end) in definition.relationships {
            for other in try related(end, of: id) {
                journal.record(type: other.type, id: other.id, .updated, keys: otherName(of: end))
            }
        }
        var arguments = SQLArguments(dialect)
        try connection.write("DELETE FROM \(SQLName.table(type)) WHERE id = \(arguments.add(id))", arguments)
        // The database clears a deleted user's ownership in other rows itself (ON DELETE SET
        // NULL): rows known from before may be out of date.
        if type == BuiltInType.user { known = [:] }
        known[EntityReference(type: type, id: id)] = .stored(nil, written: false)
        journal.record(type: type, id: id, .deleted, keys: [])
    }

    /// The name the object at the other end of `end` knows the link by, if it has one.
    private func otherName(of end: RelationshipEnd) -> [String] {
        switch end.direction {
        case .outgoing: end.relationship.inverseName.map { [$0] } ?? []
        case .incoming: [end.relationship.name]
        }
    }

    /// The column that keeps a link table's rows in the order they were made.
    private var linkOrder: String { dialect == .sqlite ? "rowid" : "seq" }

    func related(_ end: RelationshipEnd, of id: String) throws -> [EntityReference] {
        let table = SQLName.linkTable(end.relationship)
        var arguments = SQLArguments(dialect)
        switch end.direction {
        case .outgoing:
            let sql = """
                SELECT target, "targetType" FROM \(table) WHERE source = \(arguments.add(id)) ORDER BY \(linkOrder)
                """
            return try connection.rows(sql, arguments).map {
                EntityReference(type: $0.text("targetType"), id: $0.text("target"))
            }
        case .incoming:
            let sourceType = end.relationship.sourceType
            let sql = "SELECT source FROM \(table) WHERE target = \(arguments.add(id)) ORDER BY \(linkOrder)"
            return try connection.rows(sql, arguments).map { EntityReference(type: sourceType, id: $0.text("source")) }
        }
    }

    func link(_ relationship: Relationship, source: String, target: EntityReference) throws {
        var arguments = SQLArguments(dialect)
        let sql = """
            INSERT INTO \(SQLName.linkTable(relationship)) (source, target, "targetType") \
            VALUES (\(arguments.add(source)), \(arguments.add(target.id)), \(arguments.add(target.type))) \
            ON CONFLICT DO NOTHING
            """
        guard try connection.execute(sql, arguments) > 0 else { return }
        recordLink(relationship, source: source, target: target)
    }

    /// Both objects of a link that came or went changed.
    private func recordLink(_ relationship: Relationship, source: String, target: EntityReference) {
        journal.record(type: relationship.sourceType, id: source, .updated, keys: [relationship.name])
        journal.record(type: target.type, id: target.id, .updated, keys: relationship.inverseName.map { [$0] } ?? [])
    }

    func unlink(_ relationship: Relationship, source: String?, target: String?) throws {
        var conditions: [String] = []
        var arguments = SQLArguments(dialect)
        if let source { conditions.append("source = \(arguments.add(source))") }
        if let target { conditions.append("target = \(arguments.add(target))") }
        guard !conditions.isEmpty else { return }
        let sql = """
            DELETE FROM \(SQLName.linkTable(relationship)) WHERE \(conditions.joined(separator: " AND ")) \
            RETURNING source, target, "targetType"
            """
        for row in try connection.rows(sql, arguments) {
            recordLink(
                relationship,
                source: row.text("source"),
                target: EntityReference(type: row.text("targetType"), id: row.text("target"))
            )
        }
    }

    /// The grant columns, quoted, in `Permission.allCases` order.
    private static let permissionColumns = Permission.allCases.map { SQLName.quoted($0.rawValue) }

    private static func held(_ row: SQLRow) -> Set<Permission> {
        Set(Permission.allCases.filter { row.integer($0.rawValue) == 1 })
    }

    func permissions(on node: String, for principals: [String]) throws -> Set<Permission> {
        guard !principals.isEmpty else { return [] }
        var arguments = SQLArguments(dialect)
        let maxima = Self.permissionColumns.map { "MAX(\($0)) AS \($0)" }.joined(separator: ", ")
        let sql = """
            SELECT \(maxima) FROM _herald_security WHERE node = \(arguments.add(node)) \
            AND principal IN (\(arguments.list(principals.map(SQLArgument.text))))
            """
        return try connection.rows(sql, arguments).first.map(Self.held) ?? []
    }

    func grants(on node: String) throws -> [(principal: String, permissions: Set<Permission>)] {
        var arguments = SQLArguments(dialect)
        let sql = """
            SELECT principal, \(Self.permissionColumns.joined(separator: ", ")) FROM _herald_security \
            WHERE node = \(arguments.add(node)) ORDER BY principal
            """
        return try connection.rows(sql, arguments).map { ($0.text("principal"), Self.held($0)) }
    }

    func grant(_ permissions: Set<Permission>, to principal: String, on node: String) throws {
        // Placeholders in the order they appear: SQLite's `?` are positional.
        var arguments = SQLArguments(dialect)
        let key = [arguments.add(principal), arguments.add(node)]
        let flags = Permission.allCases.map { arguments.add(.integer(permissions.contains($0) ? 1 : 0)) }
        let greatest = dialect == .sqlite ? "MAX" : "GREATEST"
        let raised = Self.permissionColumns.map { "\($0) = \(greatest)(_herald_security.\($0), excluded.\($0))" }
        let sql = """
            INSERT INTO _herald_security (principal, node, \(Self.permissionColumns.joined(separator: ", "))) \
            VALUES (\((key + flags).joined(separator: ", "))) \
            ON CONFLICT (principal, node) DO UPDATE SET \(raised.joined(separator: ", "))
            """
        try connection.execute(sql, arguments)
        journal.record(type: "", id: node, .updated, keys: [ObjectChange.grantsKey])
    }

    func revoke(_ permissions: Set<Permission>, from principal: String, on node: String) throws {
        let assignments = permissions.map { "\(SQLName.quoted($0.rawValue)) = 0" }.sorted()
        guard !assignments.isEmpty else { return }
        var arguments = SQLArguments(dialect)
        let pair = "principal = \(arguments.add(principal)) AND node = \(arguments.add(node))"
        try connection.execute(
            "UPDATE _herald_security SET \(assignments.joined(separator: ", ")) WHERE \(pair)",
            arguments
        )
        let none = Self.permissionColumns.map { "\($0) = 0" }.joined(separator: " AND ")
        try connection.execute("DELETE FROM _herald_security WHERE \(pair) AND \(none)", arguments)
        journal.record(type: "", id: node, .updated, keys: [ObjectChange.grantsKey])
    }

    func newestEventID() throws -> Int64 {
        try connection.integer("SELECT MAX(id) FROM _herald_events", SQLArguments(dialect)) ?? 0
    }

    func appendEvents(_ events: [EventToLog]) throws -> AppendedEventIDs {
        guard events.count > Self.eventsPerInsert else { return try appendEvents(events[...]) }
        let chunks = stride(from: 0, to: events.count, by: Self.eventsPerInsert).map {
            events[$0..<min($0 + Self.eventsPerInsert, events.count)]
        }
        return AppendedEventIDs(joining: try chunks.map { try appendEvents($0) })
    }

    /// Events one `INSERT` appends at most: four values each stays far below both databases'
    /// limits on bound values.
    static let eventsPerInsert = 1000

    private func appendEvents(_ events: ArraySlice<EventToLog>) throws -> AppendedEventIDs {
        guard !events.isEmpty else {
            let none = AppendedEventIDs()
            none.resolve([])
            return none
        }
        return try connection.appendEvents(events)
    }

    /// The events' rows for `VALUES` in the log's column order (type, data, audience, created).
    static func eventRows(_ events: ArraySlice<EventToLog>, _ arguments: inout SQLArguments) -> String {
        events.map { event in
            "(\(arguments.add(event.type)), \(arguments.add(event.data)), \(arguments.add(event.audience)), "
                + "\(arguments.add(.integer(event.created.millisecondsSince1970))))"
        }.joined(separator: ", ")
    }

    private static let eventColumns = "SELECT id, type, data, audience, created FROM _herald_events"

    static func event(_ row: SQLRow) -> PersistedEvent {
        PersistedEvent(
            id: row.integer("id") ?? 0,
            type: row.text("type"),
            data: row.text("data"),
            audience: row.text("audience"),
            created: Timestamp(millisecondsSince1970: row.integer("created") ?? 0)
        )
    }

    func recentEvents(limit: Int) throws -> [PersistedEvent] {
        var arguments = SQLArguments(dialect)
        let sql = "\(Self.eventColumns) ORDER BY id DESC LIMIT \(arguments.add(.integer(Int64(limit))))"
        return try connection.rows(sql, arguments).reversed().map(Self.event)
    }

    func events(after id: Int64, through last: Int64, limit: Int) throws -> [PersistedEvent] {
        try Self.events(after: id, through: last, limit: limit, on: connection)
    }

    static func events(after id: Int64, through last: Int64, limit: Int, on connection: any SQLConnection) throws
        -> [PersistedEvent]
    {
        var arguments = SQLArguments(connection.dialect)
        let sql = """
            \(Self.eventColumns) WHERE id > \(arguments.add(.integer(id))) AND id <= \(arguments.add(.integer(last))) \
            ORDER BY id LIMIT \(arguments.add(.integer(Int64(limit))))
            """
        return try connection.rows(sql, arguments).map(Self.event)
    }

    func pruneEvents(keepingNewest: Int, olderThan: Timestamp, atMost batch: Int) throws -> Int64? {
        // The newest id still to drop: past the count, or past the age.
        var byCountArguments = SQLArguments(dialect)
        let byCount = try connection.integer(
            "SELECT id FROM _herald_events ORDER BY id DESC LIMIT 1 OFFSET \(byCountArguments.add(.integer(Int64(keepingNewest))))",
            byCountArguments
        )
        var byAgeArguments = SQLArguments(dialect)
        let byAge = try connection.integer(
            "SELECT MAX(id) FROM _herald_events WHERE created < \(byAgeArguments.add(.integer(olderThan.millisecondsSince1970)))",
            byAgeArguments
        )
        guard let through = [byCount, byAge].compactMap({ $0 }).max() else { return nil }
        // A bounded batch, so pruning never holds the writer for long; the newest row stays,
        // so the next id stays above every id handed out (it counts as dropped all the same).
        var batchArguments = SQLArguments(dialect)
        let last = try connection.integer(
            """
            SELECT MAX(id) FROM (SELECT id FROM _herald_events WHERE id <= \(batchArguments.add(.integer(through))) \
            AND id < (SELECT MAX(id) FROM _herald_events) ORDER BY id LIMIT \(batchArguments.add(.integer(Int64(batch))))) AS batch
            """,
            batchArguments
        )
        guard let last else {
            // Only the newest row is past the limits: nothing to delete, but it is dropped.
            return try newestEventID() == through ? through : nil
        }
        var deleteArguments = SQLArguments(dialect)
        try connection.execute(
            "DELETE FROM _herald_events WHERE id <= \(deleteArguments.add(.integer(last)))",
            deleteArguments
        )
        return last
    }

    func session(_ key: String) throws -> LoginSession? {
        var arguments = SQLArguments(dialect)
        let sql = """
            SELECT key, "userID", created, "lastSeen" FROM _herald_sessions WHERE key = \(arguments.add(key))
            """
        guard let row = try connection.rows(sql, arguments).first else { return nil }
        return LoginSession(
            key: row.text("key"),
            userID: row.text("userID"),
            created: Timestamp(millisecondsSince1970: row.integer("created") ?? 0),
            lastSeen: Timestamp(millisecondsSince1970: row.integer("lastSeen") ?? 0)
        )
    }

    func saveSession(_ session: LoginSession) throws {
        var arguments = SQLArguments(dialect)
        let sql = """
            INSERT INTO _herald_sessions (key, "userID", created, "lastSeen") VALUES \
            (\(arguments.add(session.key)), \(arguments.add(session.userID)), \
            \(arguments.add(.integer(session.created.millisecondsSince1970))), \
            \(arguments.add(.integer(session.lastSeen.millisecondsSince1970)))) \
            ON CONFLICT (key) DO UPDATE SET "lastSeen" = excluded."lastSeen"
            """
        try connection.execute(sql, arguments)
    }

    func deleteSession(_ key: String) throws {
        var arguments = SQLArguments(dialect)
        if try connection.execute("DELETE FROM _herald_sessions WHERE key = \(arguments.add(key))", arguments) > 0 {
            connection.didEndSession(key: key)
        }
    }

    func deleteSessions(idleSince time: Timestamp) throws -> Int {
        var arguments = SQLArguments(dialect)
        let sql =
            "DELETE FROM _herald_sessions WHERE \"lastSeen\" < \(arguments.add(.integer(time.millisecondsSince1970)))"
        return try connection.execute(sql, arguments)
    }

    func recordPresence(
        node: String,
        adding: Set<String>,
        removing: Set<String>,
        at time: Timestamp,
        expiredBefore: Timestamp
    ) throws {
        var seen = SQLArguments(dialect)
        try connection.execute(
            """
            INSERT INTO _herald_nodes (node, seen) VALUES (\(seen.add(node)), \(seen.add(.integer(time.millisecondsSince1970)))) \
            ON CONFLICT (node) DO UPDATE SET seen = excluded.seen
            """,
            seen
        )
        for user in adding.sorted() {
            var arguments = SQLArguments(dialect)
            try connection.execute(
                """
                INSERT INTO _herald_presence (node, "user") VALUES (\(arguments.add(node)), \(arguments.add(user))) \
                ON CONFLICT DO NOTHING
                """,
                arguments
            )
        }
        if !removing.isEmpty {
            var arguments = SQLArguments(dialect)
            let sql = """
                DELETE FROM _herald_presence WHERE node = \(arguments.add(node)) \
                AND "user" IN (\(arguments.list(removing.sorted().map(SQLArgument.text))))
                """
            try connection.execute(sql, arguments)
        }
        var expired = SQLArguments(dialect)
        let cutoff = expired.add(.integer(expiredBefore.millisecondsSince1970))
        try connection.execute(
            "DELETE FROM _herald_presence WHERE node IN (SELECT node FROM _herald_nodes WHERE seen < \(cutoff))",
            expired
        )
        try connection.execute("DELETE FROM _herald_nodes WHERE seen < \(cutoff)", expired)
    }

    func forgetPresence(node: String) throws {
        var arguments = SQLArguments(dialect)
        let placeholder = arguments.add(node)
        try connection.execute("DELETE FROM _herald_presence WHERE node = \(placeholder)", arguments)
        try connection.execute("DELETE FROM _herald_nodes WHERE node = \(placeholder)", arguments)
    }

    func isPresent(anyOf users: Set<String>, otherThan node: String, seenSince: Timestamp) throws -> Bool {
        guard !users.isEmpty else { return false }
        var arguments = SQLArguments(dialect)
        let sql = """
            SELECT 1 FROM _herald_presence p JOIN _herald_nodes n ON n.node = p.node \
            WHERE p."user" IN (\(arguments.list(users.sorted().map(SQLArgument.text)))) \
            AND p.node <> \(arguments.add(node)) AND n.seen >= \(arguments.add(.integer(seenSince.millisecondsSince1970))) LIMIT 1
            """
        return try !connection.rows(sql, arguments).isEmpty
    }

    func isEmpty() throws -> Bool {
        for type in schema.types.keys where try !connection.rows("SELECT 1 FROM \(SQLName.table(type)) LIMIT 1").isEmpty
        {
            return false
        }
        return true
    }

    func metadata(_ key: String) throws -> String? {
        try Self.metadata(key, connection)
    }

    static func metadata(_ key: String, _ connection: any SQLConnection) throws -> String? {
        var arguments = SQLArguments(connection.dialect)
        let sql = "SELECT value FROM _herald_meta WHERE key = \(arguments.add(key))"
        if case .text(let value) = try connection.value(sql, arguments) { return value }
        return nil
    }

    func setMetadata(_ key: String, _ value: String) throws {
        try Self.setMetadata(key, value, connection)
    }

    static func setMetadata(_ key: String, _ value: String, _ connection: any SQLConnection) throws {
        var arguments = SQLArguments(connection.dialect)
        let sql = """
            INSERT INTO _herald_meta (key, value) VALUES (\(arguments.add(key)), \(arguments.add(value))) \
            ON CONFLICT (key) DO UPDATE SET value = excluded.value
            """
        try connection.execute(sql, arguments)
    }

    func claim(_ key: String, forgetBefore: Timestamp) throws -> Bool {
        // Claims live in the metadata table, their time (13 digits of milliseconds) as value.
        var old = SQLArguments(dialect)
        let cutoff = String(format: "%013lld", forgetBefore.millisecondsSince1970)
        try connection.execute(
            "DELETE FROM _herald_meta WHERE key LIKE 'claim:%' AND value < \(old.add(cutoff))",
            old
        )
        var arguments = SQLArguments(dialect)
        let now = String(format: "%013lld", Timestamp.now.millisecondsSince1970)
        let sql = """
            INSERT INTO _herald_meta (key, value) VALUES (\(arguments.add("claim:" + key)), \(arguments.add(now))) \
            ON CONFLICT (key) DO NOTHING
            """
        return try connection.execute(sql, arguments) > 0
    }

    func afterCommit(_ action: @escaping @Sendable () -> Void) {
        connection.afterCommit(action)
    }

    static func isColumn(_ name: String, _ definition: TypeDefinition) -> Bool {
        name == SystemProperty.owner || definition.property(named: name) != nil
    }

    func decode(_ row: SQLRow, _ definition: TypeDefinition) -> StoredEntity {
        Self.decode(row, definition)
    }

    static func decode(_ row: SQLRow, _ definition: TypeDefinition) -> StoredEntity {
        var values: [String: JSONValue] = [:]
        var id = ""
        for (column, value) in zip(row.columns, row.values) {
            if column == "id" {
                if case .text(let s) = value { id = s }
                continue
            }
            if column == SystemProperty.owner {
                if case .text(let s) = value { values[column] = .string(s) } else { values[column] = .null }
                continue
            }
            guard let property = definition.property(named: column) else { continue }
            values[column] = value.decoded(as: property.type)
        }
        return StoredEntity(type: definition.name, id: id, values: values)
    }
}
