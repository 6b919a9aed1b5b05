import GRDB
import HeraldSchema

/// A transaction on the SQLite backend; valid only inside the closure it was given to.
final class SQLiteTransaction: StorageTransaction {
    let db: Database
    let schema: Schema
    let schemaGeneration: Int64
    private var journal = ChangeJournal()
    var changes: [ObjectChange] { journal.changes }

    /// Reads the migration generation first, so it belongs to the transaction's snapshot.
    init(db: Database, layout: Layout) throws {
        self.db = db
        self.schemaGeneration = try Self.generation(db)
        self.schema = layout.schema(schemaGeneration)
    }

    /// The metadata key of the migration generation, raised by every migration.
    static let generationKey = "schema.generation"

    static func generation(_ db: Database) throws -> Int64 {
        try String.fetchOne(
            db.cachedStatement(sql: "SELECT value FROM _herald_meta WHERE key = ?"),
            arguments: [generationKey]
        ).flatMap { Int64($0) } ?? 0
    }

    /// Runs a statement through the connection's statement cache: the SQL for a type is built
    /// the same way every time, so each is compiled once.
    func execute(sql: String, arguments: StatementArguments = []) throws {
        try db.cachedStatement(sql: sql).execute(arguments: arguments)
    }

    func typeDefinition(_ name: String) throws -> TypeDefinition {
        guard let type = schema.types[name] else { throw StorageError.unknownType(name) }
        return type
    }

    func fetch(type: String, id: String) throws -> StoredEntity? {
        let definition = try typeDefinition(type)
        let row = try Row.fetchOne(
            try db.cachedStatement(sql: "SELECT * FROM \(Layout.table(type)) WHERE id = ?"),
            arguments: [id]
        )
        return row.map { decode($0, definition) }
    }

    func fetch(_ query: EntityQuery) throws -> [StoredEntity] {
        let definition = try typeDefinition(query.type)
        var sql = "SELECT * FROM \(Layout.table(query.type))"
        var arguments = StatementArguments()
        if let filter = query.filter {
            sql += " WHERE " + (try SQLFilter(type: definition).sql(filter, &arguments))
        }
        var order: [String] = []
        for key in query.sort {
            guard
                key.property == SystemProperty.id || definition.property(named: key.property) != nil
                    || key.property == SystemProperty.owner
            else { throw StorageError.unknownProperty(type: query.type, property: key.property) }
            order.append(
                "\(key.property.quotedDatabaseIdentifier) \(key.descending ? "DESC NULLS LAST" : "ASC NULLS LAST")"
            )
        }
        order.append("id ASC")
        sql += " ORDER BY " + order.joined(separator: ", ")
        if let limit = query.limit {
            sql += " LIMIT \(max(0, limit)) OFFSET \(max(0, query.offset))"
        } else if query.offset > 0 {
            sql += " LIMIT -1 OFFSET \(query.offset)"
        }
        return try Row.fetchAll(try db.cachedStatement(sql: sql), arguments: arguments).map { decode($0, definition) }
    }

    func count(_ query: EntityQuery) throws -> Int {
        let definition = try typeDefinition(query.type)
        var sql = "SELECT COUNT(*) FROM \(Layout.table(query.type))"
        var arguments = StatementArguments()
        if let filter = query.filter {
            sql += " WHERE " + (try SQLFilter(type: definition).sql(filter, &arguments))
        }
        return try Int.fetchOne(try db.cachedStatement(sql: sql), arguments: arguments) ?? 0
    }

    func exists(type: String, property: String, value: JSONValue, excluding id: String?) throws -> Bool {
        var sql = "SELECT 1 FROM \(Layout.table(type)) WHERE \(property.quotedDatabaseIdentifier) = ?"
        var arguments: StatementArguments = [SQLValue.bind(value)]
        if let id {
            sql += " AND id <> ?"
            arguments += [id]
        }
        return try Row.fetchOne(try db.cachedStatement(sql: sql + " LIMIT 1"), arguments: arguments) != nil
    }

    func insert(_ entity: StoredEntity) throws {
        let definition = try typeDefinition(entity.type)
        var columns = ["id"]
        var arguments: StatementArguments = [entity.id]
        for (name, value) in entity.values.sorted(by: { $0.key < $1.key }) {
            guard Self.isColumn(name, definition) else {
                throw StorageError.unknownProperty(type: entity.type, property: name)
            }
            columns.append(name.quotedDatabaseIdentifier)
            arguments += [SQLValue.bind(value, for: definition.property(named: name)?.type ?? .string)]
        }
        let placeholders = Array(repeating: "?", count: columns.count).joined(separator: ", ")
        try execute(
            sql:
                "INSERT INTO \(Layout.table(entity.type)) (\(columns.joined(separator: ", "))) VALUES (\(placeholders))",
            arguments: arguments
        )
        journal.record(type: entity.type, id: entity.id, .created, keys: entity.values.keys)
    }

    func update(type: String, id: String, values: [String: JSONValue]) throws {
        guard !values.isEmpty else { return }
        let definition = try typeDefinition(type)
        var assignments: [String] = []
        var arguments = StatementArguments()
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            guard Self.isColumn(name, definition) else {
                throw StorageError.unknownProperty(type: type, property: name)
            }
            assignments.append("\(name.quotedDatabaseIdentifier) = ?")
            arguments += [SQLValue.bind(value, for: definition.property(named: name)?.type ?? .string)]
        }
        arguments += [id]
        try execute(
            sql: "UPDATE \(Layout.table(type)) SET \(assignments.joined(separator: ", ")) WHERE id = ?",
            arguments: arguments
        )
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
        try execute(sql: "DELETE FROM \(Layout.table(type)) WHERE id = ?", arguments: [id])
        journal.record(type: type, id: id, .deleted, keys: [])
    }

    /// The name the object at the other end of `end` knows the link by, if it has one.
    private func otherName(of end: RelationshipEnd) -> [String] {
        switch end.direction {
        case .outgoing: end.relationship.inverseName.map { [$0] } ?? []
        case .incoming: [end.relationship.name]
        }
    }

    func related(_ end: RelationshipEnd, of id: String) throws -> [EntityReference] {
        let table = Layout.linkTable(end.relationship)
        switch end.direction {
        case .outgoing:
            return try Row.fetchAll(
                try db.cachedStatement(sql: "SELECT target, targetType FROM \(table) WHERE source = ? ORDER BY rowid"),
                arguments: [id]
            ).map { EntityReference(type: $0["targetType"], id: $0["target"]) }
        case .incoming:
            let sourceType = end.relationship.sourceType
            return try String.fetchAll(
                try db.cachedStatement(sql: "SELECT source FROM \(table) WHERE target = ? ORDER BY rowid"),
                arguments: [id]
            ).map { EntityReference(type: sourceType, id: $0) }
        }
    }

    func link(_ relationship: Relationship, source: String, target: EntityReference) throws {
        try execute(
            sql: """
                INSERT OR IGNORE INTO \(Layout.linkTable(relationship)) (source, target, targetType) VALUES (?, ?, ?)
                """,
            arguments: [source, target.id, target.type]
        )
        guard db.changesCount > 0 else { return }
        recordLink(relationship, source: source, target: target)
    }

    /// Both objects of a link that came or went changed.
    private func recordLink(_ relationship: Relationship, source: String, target: EntityReference) {
        journal.record(type: relationship.sourceType, id: source, .updated, keys: [relationship.name])
        journal.record(type: target.type, id: target.id, .updated, keys: relationship.inverseName.map { [$0] } ?? [])
    }

    func unlink(_ relationship: Relationship, source: String?, target: String?) throws {
        var conditions: [String] = []
        var arguments = StatementArguments()
        if let source {
            conditions.append("source = ?")
            arguments += [source]
        }
        if let target {
            conditions.append("target = ?")
            arguments += [target]
        }
        guard !conditions.isEmpty else { return }
        let removed = try Row.fetchAll(
            try db.cachedStatement(
                sql: """
                    DELETE FROM \(Layout.linkTable(relationship)) WHERE \(conditions.joined(separator: " AND "))
                    RETURNING source, target, targetType
                    """
            ),
            arguments: arguments
        )
        for row in removed {
            recordLink(
                relationship,
                source: row["source"],
                target: EntityReference(type: row["targetType"], id: row["target"])
            )
        }
    }

    func permissions(on node: String, for principals: [String]) throws -> Set<Permission> {
        guard !principals.isEmpty else { return [] }
        let placeholders = Array(repeating: "?", count: principals.count).joined(separator: ", ")
        var arguments: StatementArguments = [node]
        for principal in principals { arguments += [principal] }
        let row = try Row.fetchOne(
            try db.cachedStatement(
                sql: """
                    SELECT MAX(read) AS read, MAX(write) AS write, MAX("delete") AS "delete", MAX(accessControl) AS accessControl
                    FROM _herald_security WHERE node = ? AND principal IN (\(placeholders))
                    """
            ),
            arguments: arguments
        )
        guard let row else { return [] }
        return Set(Permission.allCases.filter { (row[$0.rawValue] as Int?) == 1 })
    }

    func grants(on node: String) throws -> [(principal: String, permissions: Set<Permission>)] {
        let rows = try Row.fetchAll(
            try db.cachedStatement(
                sql: """
                    SELECT principal, read, write, "delete", accessControl FROM _herald_security
                    WHERE node = ? ORDER BY principal
                    """
            ),
            arguments: [node]
        )
        return rows.map { row in
            let held = Permission.allCases.filter { (row[$0.rawValue] as Int?) == 1 }
            return (row["principal"], Set(held))
        }
    }

    func grant(_ permissions: Set<Permission>, to principal: String, on node: String) throws {
        try execute(
            sql: """
                INSERT INTO _herald_security (principal, node, read, write, "delete", accessControl) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(principal, node) DO UPDATE SET read = MAX(read, excluded.read), write = MAX(write, excluded.write),
                  "delete" = MAX("delete", excluded."delete"), accessControl = MAX(accessControl, excluded.accessControl)
                """,
            arguments: [principal, node]
                + StatementArguments(Permission.allCases.map { permissions.contains($0) ? 1 : 0 })
        )
        journal.record(type: "", id: node, .updated, keys: [ObjectChange.grantsKey])
    }

    func revoke(_ permissions: Set<Permission>, from principal: String, on node: String) throws {
        let assignments = permissions.map { "\($0.rawValue.quotedDatabaseIdentifier) = 0" }.sorted().joined(
            separator: ", "
        )
        guard !assignments.isEmpty else { return }
        try execute(
            sql: "UPDATE _herald_security SET \(assignments) WHERE principal = ? AND node = ?",
            arguments: [principal, node]
        )
        try execute(
            sql:
                "DELETE FROM _herald_security WHERE principal = ? AND node = ? AND read = 0 AND write = 0 AND \"delete\" = 0 AND accessControl = 0",
            arguments: [principal, node]
        )
        journal.record(type: "", id: node, .updated, keys: [ObjectChange.grantsKey])
    }

    func newestEventID() throws -> Int64 {
        try Int64.fetchOne(try db.cachedStatement(sql: "SELECT MAX(id) FROM _herald_events")) ?? 0
    }

    func appendEvent(type: String, data: String, audience: String, created: Timestamp) throws -> Int64 {
        let id = try Int64.fetchOne(
            try db.cachedStatement(
                sql: "INSERT INTO _herald_events (type, data, audience, created) VALUES (?, ?, ?, ?) RETURNING id"
            ),
            arguments: [type, data, audience, created.millisecondsSince1970]
        )
        guard let id else { throw StorageError.database(code: 0, message: "the event log gave no id") }
        return id
    }

    static func event(_ row: Row) -> PersistedEvent {
        PersistedEvent(
            id: row["id"],
            type: row["type"],
            data: row["data"],
            audience: row["audience"],
            created: Timestamp(millisecondsSince1970: row["created"])
        )
    }

    func recentEvents(limit: Int) throws -> [PersistedEvent] {
        try Row.fetchAll(
            try db.cachedStatement(
                sql: "SELECT id, type, data, audience, created FROM _herald_events ORDER BY id DESC LIMIT ?"
            ),
            arguments: [limit]
        ).reversed().map(Self.event)
    }

    func events(after id: Int64, through last: Int64, limit: Int) throws -> [PersistedEvent] {
        try Row.fetchAll(
            try db.cachedStatement(
                sql: """
                    SELECT id, type, data, audience, created FROM _herald_events
                    WHERE id > ? AND id <= ? ORDER BY id LIMIT ?
                    """
            ),
            arguments: [id, last, limit]
        ).map(Self.event)
    }

    func pruneEvents(keepingNewest: Int, olderThan: Timestamp, atMost batch: Int) throws -> Int64? {
        // The newest id still to drop: past the count, or past the age.
        let byCount = try Int64.fetchOne(
            db,
            sql: "SELECT id FROM _herald_events ORDER BY id DESC LIMIT 1 OFFSET ?",
            arguments: [keepingNewest]
        )
        let byAge = try Int64.fetchOne(
            db,
            sql: "SELECT MAX(id) FROM _herald_events WHERE created < ?",
            arguments: [olderThan.millisecondsSince1970]
        )
        guard let through = [byCount, byAge].compactMap({ $0 }).max() else { return nil }
        // A bounded batch, so pruning never holds the writer for long; the newest row stays,
        // so the next id stays above every id handed out (it counts as dropped all the same).
        let last = try Int64.fetchOne(
            db,
            sql: """
                SELECT MAX(id) FROM (SELECT id FROM _herald_events WHERE id <= ?
                  AND id < (SELECT MAX(id) FROM _herald_events) ORDER BY id LIMIT ?)
                """,
            arguments: [through, batch]
        )
        guard let last else {
            // Only the newest row is past the limits: nothing to delete, but it is dropped.
            let newest = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM _herald_events")
            return newest == through ? through : nil
        }
        try execute(sql: "DELETE FROM _herald_events WHERE id <= ?", arguments: [last])
        return last
    }

    func session(_ key: String) throws -> LoginSession? {
        guard
            let row = try Row.fetchOne(
                try db.cachedStatement(
                    sql: "SELECT key, userID, created, lastSeen FROM _herald_sessions WHERE key = ?"
                ),
                arguments: [key]
            )
        else { return nil }
        return LoginSession(
            key: row["key"],
            userID: row["userID"],
            created: Timestamp(millisecondsSince1970: row["created"]),
            lastSeen: Timestamp(millisecondsSince1970: row["lastSeen"])
        )
    }

    func saveSession(_ session: LoginSession) throws {
        try execute(
            sql: """
                INSERT INTO _herald_sessions (key, userID, created, lastSeen) VALUES (?, ?, ?, ?)
                ON CONFLICT(key) DO UPDATE SET lastSeen = excluded.lastSeen
                """,
            arguments: [
                session.key, session.userID, session.created.millisecondsSince1970,
                session.lastSeen.millisecondsSince1970,
            ]
        )
    }

    func deleteSession(_ key: String) throws {
        try execute(sql: "DELETE FROM _herald_sessions WHERE key = ?", arguments: [key])
    }

    func deleteSessions(idleSince time: Timestamp) throws -> Int {
        try execute(sql: "DELETE FROM _herald_sessions WHERE lastSeen < ?", arguments: [time.millisecondsSince1970])
        return db.changesCount
    }

    func isEmpty() throws -> Bool {
        for type in schema.types.keys {
            if try Row.fetchOne(try db.cachedStatement(sql: "SELECT 1 FROM \(Layout.table(type)) LIMIT 1")) != nil {
                return false
            }
        }
        return true
    }

    func metadata(_ key: String) throws -> String? {
        try String.fetchOne(
            try db.cachedStatement(sql: "SELECT value FROM _herald_meta WHERE key = ?"),
            arguments: [key]
        )
    }

    func setMetadata(_ key: String, _ value: String) throws {
        try execute(
            sql:
                "INSERT INTO _herald_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            arguments: [key, value]
        )
    }

    func afterCommit(_ action: @escaping @Sendable () -> Void) {
        db.afterNextTransaction(onCommit: { _ in action() })
    }

    static func isColumn(_ name: String, _ definition: TypeDefinition) -> Bool {
        name == SystemProperty.owner || definition.property(named: name) != nil
    }

    func decode(_ row: Row, _ definition: TypeDefinition) -> StoredEntity {
        var values: [String: JSONValue] = [:]
        var id = ""
        for (column, dbValue) in row {
            if column == "id" {
                id = String.fromDatabaseValue(dbValue) ?? ""
                continue
            }
            if column == SystemProperty.owner {
                values[column] = String.fromDatabaseValue(dbValue).map(JSONValue.string) ?? .null
                continue
            }
            guard let property = definition.property(named: column) else { continue }
            values[column] = SQLValue.decode(dbValue, as: property.type)
        }
        return StoredEntity(type: definition.name, id: id, values: values)
    }
}

/// Errors the storage layer raises: requests it cannot map to the schema, and conditions of the
/// database itself, each with what to do about it.
public enum StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    case unknownType(String)
    case unknownProperty(type: String, property: String)
    /// The disk (or `maxDatabaseSize`) is full; nothing of the transaction was written.
    case full
    /// The query has more values or parameters than the database takes.
    case queryTooLarge
    /// The database file is damaged or not a database; `detail` is what the check reported.
    case damaged(path: String, detail: String)
    /// Any other database failure: SQLite's result code and message, never the statement or
    /// its arguments (they may hold user data).
    case database(code: Int32, message: String)

    public var description: String {
        switch self {
        case .unknownType(let t): "unknown type '\(t)'"
        case .unknownProperty(let t, let p): "unknown property '\(p)' on type '\(t)'"
        case .full:
            "the database is full (disk space or maxDatabaseSize); nothing was written, free space and try again"
        case .queryTooLarge: "the query has too many values or parameters; split it into smaller queries"
        case .database(let code, let message): "database error (SQLite \(code)): \(message)"
        case .damaged(let path, let detail):
            "the database \(path) is damaged (\(detail)); restore it from a backup (herald backup) or move it away"
        }
    }
}

/// Conversions between canonical JSON values and SQLite values.
enum SQLValue {
    static func bind(_ value: JSONValue) -> DatabaseValue {
        switch value {
        case .null: .null
        case .bool(let b): (b ? 1 : 0).databaseValue
        case .int(let i): i.databaseValue
        case .double(let d): d.databaseValue
        case .string(let s): s.databaseValue
        case .array, .object: value.jsonString.databaseValue
        }
    }

    /// Binds a value for a column of `type`: JSON properties always store their JSON text.
    static func bind(_ value: JSONValue, for type: PropertyType) -> DatabaseValue {
        if case .json = type, !value.isNull { return value.jsonString.databaseValue }
        return bind(value)
    }

    static func decode(_ dbValue: DatabaseValue, as type: PropertyType) -> JSONValue {
        switch dbValue.storage {
        case .null:
            return .null
        case .int64(let i):
            switch type {
            case .boolean: return .bool(i != 0)
            case .number: return .double(Double(i))
            default: return .int(i)
            }
        case .double(let d):
            return .double(d)
        case .string(let s):
            if case .json = type { return (try? JSONValue(parsing: s)) ?? .string(s) }
            return .string(s)
        case .blob:
            return .null
        }
    }
}
