import GRDB
import HeraldSchema
import Logging

extension SQLiteStorage {
    public func migrate(to schema: Schema, allowDestructive: Bool) async throws -> MigrationReport {
        let layout = self.layout
        let report = try await Self.translatingErrorsAsync {
            try await pool.write { db in
                try SchemaMigrator(schema: schema, allowDestructive: allowDestructive)
                    .migrate(SQLiteCatalog(db: db, connection: SQLiteConnection(db)), layout: layout)
            }
        }
        for change in report.changes { logger.info("migration: \(change)") }
        return report
    }
}

/// SQLite's catalog and table definitions for ``SchemaMigrator``: STRICT tables, triggers where
/// one foreign key cannot do the cleaning up.
struct SQLiteCatalog: MigrationCatalog {
    let db: Database
    let connection: any SQLConnection

    func tableNames() throws -> Set<String> {
        Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'"))
    }

    func columns(of table: String) throws -> [(name: String, type: String)] {
        try db.columns(in: table).map { ($0.name, $0.type.uppercased()) }
    }

    func propertyIndexes(on table: String) throws -> [String] {
        try db.indexes(on: table).map(\.name).filter { $0.hasPrefix("ix_") || $0.hasPrefix("ux_") }
    }

    func dropIndexes(on table: String, column: String) throws -> [String] {
        try db.indexes(on: table).filter { $0.columns.contains(column) && !$0.name.hasPrefix("sqlite_") }.map {
            "DROP INDEX \(SQLName.quoted($0.name))"
        }
    }

    func createTable(_ type: TypeDefinition) -> [String] {
        let columns =
            SchemaMigrator.systemColumnDefinitions(.sqlite)
            + type.properties.values.sorted { $0.name < $1.name }.map { SchemaMigrator.columnDefinition($0, .sqlite) }
        return ["CREATE TABLE \(SQLName.table(type.name)) (\(columns.joined(separator: ", "))) STRICT"]
    }

    func supportTables(_ schema: Schema) -> [String] {
        var statements = [
            """
            CREATE TABLE IF NOT EXISTS _herald_sessions (
              key TEXT PRIMARY KEY NOT NULL,
              userID TEXT NOT NULL REFERENCES "User"(id) ON DELETE CASCADE,
              created INTEGER NOT NULL,
              lastSeen INTEGER NOT NULL
            ) STRICT
            """,
            """
            CREATE TABLE IF NOT EXISTS _herald_security (
              principal TEXT NOT NULL,
              node TEXT NOT NULL,
              read INTEGER NOT NULL DEFAULT 0,
              write INTEGER NOT NULL DEFAULT 0,
              "delete" INTEGER NOT NULL DEFAULT 0,
              accessControl INTEGER NOT NULL DEFAULT 0,
              PRIMARY KEY (principal, node)
            ) STRICT
            """,
            "CREATE INDEX IF NOT EXISTS _herald_security_node ON _herald_security(node)",
            // Which nodes sharing the database have streams open for which users (presence for
            // `$.sendEvent`), and when each node was last alive.
            "CREATE TABLE IF NOT EXISTS _herald_nodes (node TEXT PRIMARY KEY NOT NULL, seen INTEGER NOT NULL) STRICT",
            """
            CREATE TABLE IF NOT EXISTS _herald_presence (
              node TEXT NOT NULL, "user" TEXT NOT NULL, PRIMARY KEY ("user", node)
            ) STRICT
            """,
            // The event log: ids are rowids, one above the largest, so they follow commit order
            // (SQLite has one writer); pruning never deletes the newest row, so an id is never
            // handed out twice. (AUTOINCREMENT would do the same at one more page write per
            // event.) Earlier versions kept the history, with ids from the clock, in the same table.
            """
            CREATE TABLE IF NOT EXISTS _herald_events (
              id INTEGER PRIMARY KEY NOT NULL,
              type TEXT NOT NULL,
              data TEXT NOT NULL,
              audience TEXT NOT NULL,
              created INTEGER NOT NULL
            ) STRICT
            """,
        ]
        // Grants go when their object or principal goes; objects live in one table per type.
        for type in schema.types.keys.sorted() {
            statements.append(
                """
                CREATE TRIGGER IF NOT EXISTS \(SQLName.quoted("_herald_security_delete_\(type)"))
                AFTER DELETE ON \(SQLName.table(type))
                BEGIN DELETE FROM _herald_security WHERE node = OLD.id OR principal = OLD.id; END
                """
            )
        }
        return statements
    }

    func createLinkTable(_ relationship: Relationship) -> [String] {
        let name = SQLName.linkTableName(relationship)
        let table = SQLName.quoted(name)
        var targetColumn = "target TEXT NOT NULL"
        if relationship.targetTypes.count == 1 {
            targetColumn += " REFERENCES \(SQLName.table(relationship.targetTypes[0]))(id) ON DELETE CASCADE"
        }
        var statements = [
            """
            CREATE TABLE \(table) (
              source TEXT NOT NULL REFERENCES \(SQLName.table(relationship.sourceType))(id) ON DELETE CASCADE,
              \(targetColumn),
              targetType TEXT NOT NULL,
              UNIQUE (source, target)
            ) STRICT
            """,
            "CREATE INDEX \(SQLName.quoted("\(name)_target")) ON \(table)(target)",
        ]
        if relationship.cardinality == .one {
            statements.append("CREATE UNIQUE INDEX \(SQLName.quoted("\(name)_one")) ON \(table)(source)")
        }
        if relationship.inverseCardinality == .one {
            statements.append("CREATE UNIQUE INDEX \(SQLName.quoted("\(name)_inverse_one")) ON \(table)(target)")
        }
        if relationship.targetTypes.count > 1 {
            // No single foreign key fits several target tables: clean up with triggers.
            for target in relationship.targetTypes {
                statements.append(
                    """
                    CREATE TRIGGER \(SQLName.quoted("\(name)_delete_\(target)"))
                    AFTER DELETE ON \(SQLName.table(target))
                    BEGIN DELETE FROM \(table) WHERE target = OLD.id; END
                    """
                )
            }
        }
        return statements
    }

    func isUniquenessViolation(_ error: any Error) -> Bool {
        (error as? DatabaseError)?.resultCode == .SQLITE_CONSTRAINT
    }
}
