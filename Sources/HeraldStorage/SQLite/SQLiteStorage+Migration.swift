import GRDB
import HeraldSchema
import Logging

extension SQLiteStorage {
    public func migrate(to schema: Schema, allowDestructive: Bool) async throws -> MigrationReport {
        let layout = self.layout
        let report = try await Self.translatingErrorsAsync {
            try await pool.write { db in
                var report = try SQLiteMigrator(schema: schema, allowDestructive: allowDestructive).run(db)
                report.generation = try SQLiteTransaction.generation(db) + 1
                try db.execute(
                    sql: "INSERT OR REPLACE INTO _herald_meta (key, value) VALUES (?, ?)",
                    arguments: [SQLiteTransaction.generationKey, String(report.generation)]
                )
                layout.register(schema, generation: report.generation)
                return report
            }
        }
        for change in report.changes { logger.info("migration: \(change)") }
        return report
    }
}

/// Brings the tables to a schema: additive changes always, data-losing ones only when allowed.
///
/// The schema last applied is kept in `_herald_meta` under `schema`, so a property whose type
/// changed is recognised even when the SQL column type is the same.
struct SQLiteMigrator {
    let schema: Schema
    let allowDestructive: Bool

    static let stateKey = "schema"

    /// The applied state: property type names per type, target types per relationship.
    struct State {
        var properties: [String: [String: String]] = [:]
        var relationships: [String: [String]] = [:]

        init() {}

        init(_ schema: Schema) {
            for type in schema.types.values {
                properties[type.name] = type.properties.mapValues { $0.type.name }.reduce(into: [:]) {
                    $0[$1.key] = $1.value
                }
            }
            for relationship in schema.relationships {
                relationships[Layout.linkTableName(relationship)] = relationship.targetTypes
            }
        }

        init(json: JSONValue) {
            for (type, props) in json["properties"]?.objectValue ?? [:] {
                properties[type] = (props.objectValue ?? [:]).reduce(into: [:]) {
                    $0[$1.key] = $1.value.stringValue ?? ""
                }
            }
            for (table, targets) in json["relationships"]?.objectValue ?? [:] {
                relationships[table] = (targets.arrayValue ?? []).compactMap(\.stringValue)
            }
        }

        var json: JSONValue {
            var props = JSONObject()
            for (type, p) in properties.sorted(by: { $0.key < $1.key }) {
                props[type] = .object(
                    JSONObject(uniqueKeysWithValues: p.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
                )
            }
            var rels = JSONObject()
            for (table, targets) in relationships.sorted(by: { $0.key < $1.key }) {
                rels[table] = .array(targets.map(JSONValue.string))
            }
            return ["properties": .object(props), "relationships": .object(rels)]
        }
    }

    static let systemColumns: Set<String> = [
        "id", SystemProperty.createdDate, SystemProperty.lastModifiedDate, SystemProperty.owner,
        SystemProperty.visibleToPublicUsers, SystemProperty.visibleToAuthenticatedUsers,
    ]

    func run(_ db: Database) throws -> MigrationReport {
        let applied =
            try String.fetchOne(db, sql: "SELECT value FROM _herald_meta WHERE key = ?", arguments: [Self.stateKey])
            .flatMap { try? JSONValue(parsing: $0) }
            .map(State.init(json:)) ?? State()
        let desired = State(schema)
        let tables = Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'"))
        let typeTables = tables.filter { !$0.hasPrefix("_") && !$0.hasPrefix("sqlite_") }
        let linkTables = tables.filter { $0.hasPrefix("_rel_") }

        var destructive: [String] = []
        var steps: [(description: String, sql: [String])] = []

        // Relationships that are gone or point elsewhere now.
        for table in linkTables.sorted() {
            let targets = desired.relationships[table]
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table.quotedDatabaseIdentifier)") ?? 0
            if targets == nil {
                destructive.append("remove relationship table \(table) (\(count) links)")
                steps.append(("dropped \(table)", ["DROP TABLE \(table.quotedDatabaseIdentifier)"]))
            } else if let old = applied.relationships[table], old != targets {
                destructive.append(
                    "retarget \(table) from \(old.joined(separator: "|")) to \(targets!.joined(separator: "|")) (\(count) links)"
                )
                steps.append(("dropped \(table) to retarget it", ["DROP TABLE \(table.quotedDatabaseIdentifier)"]))
            }
        }
        // Types that are gone.
        for table in typeTables.sorted() where schema.types[table] == nil {
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table.quotedDatabaseIdentifier)") ?? 0
            destructive.append("remove type \(table) (\(count) objects)")
            steps.append(("dropped type \(table)", ["DROP TABLE \(table.quotedDatabaseIdentifier)"]))
        }
        // Properties that are gone or retyped.
        for type in schema.types.values where typeTables.contains(type.name) {
            let table = type.name.quotedDatabaseIdentifier
            let columns = try db.columns(in: type.name)
            for column in columns where !Self.systemColumns.contains(column.name) {
                let count =
                    try Int.fetchOne(
                        db,
                        sql: "SELECT COUNT(*) FROM \(table) WHERE \(column.name.quotedDatabaseIdentifier) IS NOT NULL"
                    ) ?? 0
                let dropIndexes = try indexes(db, on: type.name, column: column.name).map {
                    "DROP INDEX \($0.quotedDatabaseIdentifier)"
                }
                guard let property = type.properties[column.name] else {
                    destructive.append("remove property \(type.name).\(column.name) (\(count) values)")
                    steps.append(
                        (
                            "dropped property \(type.name).\(column.name)",
                            dropIndexes + ["ALTER TABLE \(table) DROP COLUMN \(column.name.quotedDatabaseIdentifier)"]
                        )
                    )
                    continue
                }
                let oldType = applied.properties[type.name]?[column.name]
                let retyped =
                    oldType.map { $0 != property.type.name }
                    ?? (column.type.uppercased() != Layout.columnType(property.type))
                if retyped {
                    destructive.append(
                        "retype property \(type.name).\(column.name) from \(oldType ?? column.type) to \(property.type.name) (\(count) values)"
                    )
                    steps.append(
                        (
                            "retyped property \(type.name).\(column.name)",
                            dropIndexes + [
                                "ALTER TABLE \(table) DROP COLUMN \(column.name.quotedDatabaseIdentifier)",
                                "ALTER TABLE \(table) ADD COLUMN \(columnDefinition(property))",
                            ]
                        )
                    )
                }
            }
        }
        if !destructive.isEmpty, !allowDestructive {
            throw DestructiveMigrationError(changes: destructive)
        }

        var report = MigrationReport()
        for step in steps {
            for sql in step.sql { try db.execute(sql: sql) }
            report.changes.append(step.description)
        }
        // New types and properties.
        for type in schema.types.values {
            let table = type.name.quotedDatabaseIdentifier
            if !typeTables.contains(type.name) {
                var columns = [
                    "id TEXT PRIMARY KEY NOT NULL",
                    "\(SystemProperty.createdDate) TEXT NOT NULL",
                    "\(SystemProperty.lastModifiedDate) TEXT NOT NULL",
                    "\(SystemProperty.owner) TEXT REFERENCES \(BuiltInType.user.quotedDatabaseIdentifier)(id) ON DELETE SET NULL",
                    "\(SystemProperty.visibleToPublicUsers) INTEGER NOT NULL DEFAULT 0",
                    "\(SystemProperty.visibleToAuthenticatedUsers) INTEGER NOT NULL DEFAULT 0",
                ]
                columns += type.properties.values.map(columnDefinition)
                try db.execute(sql: "CREATE TABLE \(table) (\(columns.joined(separator: ", "))) STRICT")
                report.changes.append("created type \(type.name)")
                continue
            }
            let existing = Set(try db.columns(in: type.name).map(\.name))
            for property in type.properties.values where !existing.contains(property.name) {
                try db.execute(sql: "ALTER TABLE \(table) ADD COLUMN \(columnDefinition(property))")
                if let defaultValue = property.defaultValue {
                    try db.execute(
                        sql: "UPDATE \(table) SET \(property.name.quotedDatabaseIdentifier) = ?",
                        arguments: [SQLValue.bind(defaultValue, for: property.type)]
                    )
                }
                report.changes.append("added property \(type.name).\(property.name)")
            }
        }
        try db.execute(
            sql: """
                CREATE TABLE IF NOT EXISTS _herald_sessions (
                  key TEXT PRIMARY KEY NOT NULL,
                  userID TEXT NOT NULL REFERENCES "User"(id) ON DELETE CASCADE,
                  created INTEGER NOT NULL,
                  lastSeen INTEGER NOT NULL
                ) STRICT
                """
        )
        try db.execute(
            sql: """
                CREATE TABLE IF NOT EXISTS _herald_security (
                  principal TEXT NOT NULL,
                  node TEXT NOT NULL,
                  read INTEGER NOT NULL DEFAULT 0,
                  write INTEGER NOT NULL DEFAULT 0,
                  "delete" INTEGER NOT NULL DEFAULT 0,
                  accessControl INTEGER NOT NULL DEFAULT 0,
                  PRIMARY KEY (principal, node)
                ) STRICT
                """
        )
        try db.execute(sql: "CREATE INDEX IF NOT EXISTS _herald_security_node ON _herald_security(node)")
        // The event log: ids are rowids, one above the largest, so they follow commit order
        // (SQLite has one writer); pruning never deletes the newest row, so an id is never
        // handed out twice. (AUTOINCREMENT would do the same at one more page write per event.)
        // Earlier versions kept the history, with ids from the clock, in the same table.
        try db.execute(
            sql: """
                CREATE TABLE IF NOT EXISTS _herald_events (
                  id INTEGER PRIMARY KEY NOT NULL,
                  type TEXT NOT NULL,
                  data TEXT NOT NULL,
                  audience TEXT NOT NULL,
                  created INTEGER NOT NULL
                ) STRICT
                """
        )
        // Grants go when their object or principal goes; objects live in one table per type.
        for type in schema.types.keys {
            try db.execute(
                sql: """
                    CREATE TRIGGER IF NOT EXISTS \("_herald_security_delete_\(type)".quotedDatabaseIdentifier)
                    AFTER DELETE ON \(type.quotedDatabaseIdentifier)
                    BEGIN DELETE FROM _herald_security WHERE node = OLD.id OR principal = OLD.id; END
                    """
            )
        }
        try migrateIndexes(db, &report)
        try migrateLinkTables(db, existing: linkTables, &report)
        try db.execute(
            sql:
                "INSERT INTO _herald_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            arguments: [Self.stateKey, desired.json.jsonString]
        )
        return report
    }

    func columnDefinition(_ property: PropertyDefinition) -> String {
        "\(property.name.quotedDatabaseIdentifier) \(Layout.columnType(property.type))"
    }

    func indexes(_ db: Database, on table: String, column: String) throws -> [String] {
        try db.indexes(on: table).filter { $0.columns.contains(column) && !$0.name.hasPrefix("sqlite_") }.map(\.name)
    }

    /// Creates the indexes `indexed` and `unique` ask for and drops the ones no longer asked for.
    func migrateIndexes(_ db: Database, _ report: inout MigrationReport) throws {
        for type in schema.types.values {
            var desired: [String: (column: String, unique: Bool)] = [
                "ix_\(type.name)_createdDate": (SystemProperty.createdDate, false),
                "ix_\(type.name)_owner": (SystemProperty.owner, false),
            ]
            for property in type.properties.values {
                if property.unique {
                    desired["ux_\(type.name)_\(property.name)"] = (property.name, true)
                } else if property.indexed {
                    desired["ix_\(type.name)_\(property.name)"] = (property.name, false)
                }
            }
            let existing = try db.indexes(on: type.name).filter { $0.name.hasPrefix("ix_") || $0.name.hasPrefix("ux_") }
            for index in existing where desired[index.name] == nil {
                try db.execute(sql: "DROP INDEX \(index.name.quotedDatabaseIdentifier)")
                report.changes.append("dropped index \(index.name)")
            }
            let existingNames = Set(existing.map(\.name))
            for (name, spec) in desired.sorted(by: { $0.key < $1.key }) where !existingNames.contains(name) {
                do {
                    try db.execute(
                        sql:
                            "CREATE \(spec.unique ? "UNIQUE " : "")INDEX \(name.quotedDatabaseIdentifier) ON \(type.name.quotedDatabaseIdentifier)(\(spec.column.quotedDatabaseIdentifier))"
                    )
                } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                    throw MigrationError(
                        message: "cannot make \(type.name).\(spec.column) unique: existing objects share a value"
                    )
                }
                report.changes.append("created index \(name)")
            }
        }
    }

    func migrateLinkTables(_ db: Database, existing: Set<String>, _ report: inout MigrationReport) throws {
        for relationship in schema.relationships {
            let name = Layout.linkTableName(relationship)
            let table = name.quotedDatabaseIdentifier
            let stillThere = try db.tableExists(name)
            if stillThere { continue }
            let source = relationship.sourceType.quotedDatabaseIdentifier
            var targetColumn = "target TEXT NOT NULL"
            if relationship.targetTypes.count == 1 {
                targetColumn +=
                    " REFERENCES \(relationship.targetTypes[0].quotedDatabaseIdentifier)(id) ON DELETE CASCADE"
            }
            try db.execute(
                sql: """
                    CREATE TABLE \(table) (
                      source TEXT NOT NULL REFERENCES \(source)(id) ON DELETE CASCADE,
                      \(targetColumn),
                      targetType TEXT NOT NULL,
                      UNIQUE (source, target)
                    ) STRICT
                    """
            )
            try db.execute(sql: "CREATE INDEX \("\(name)_target".quotedDatabaseIdentifier) ON \(table)(target)")
            if relationship.cardinality == .one {
                try db.execute(sql: "CREATE UNIQUE INDEX \("\(name)_one".quotedDatabaseIdentifier) ON \(table)(source)")
            }
            if relationship.inverseCardinality == .one {
                try db.execute(
                    sql: "CREATE UNIQUE INDEX \("\(name)_inverse_one".quotedDatabaseIdentifier) ON \(table)(target)"
                )
            }
            if relationship.targetTypes.count > 1 {
                // No single foreign key fits several target tables: clean up with triggers.
                for target in relationship.targetTypes {
                    try db.execute(
                        sql: """
                            CREATE TRIGGER \("\(name)_delete_\(target)".quotedDatabaseIdentifier)
                            AFTER DELETE ON \(target.quotedDatabaseIdentifier)
                            BEGIN DELETE FROM \(table) WHERE target = OLD.id; END
                            """
                    )
                }
            }
            report.changes.append("created relationship \(relationship.key)")
        }
    }
}

/// A migration that cannot be applied as asked.
public struct MigrationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
