import Foundation
import HeraldSchema
import Logging
import NIOPosix
import Synchronization

extension PostgreSQLStorage {
    /// Migrates under an advisory lock, so that of several nodes starting at once one migrates
    /// and the others wait, then find the tables as the first left them.
    public func migrate(to schema: Schema, allowDestructive: Bool) async throws -> MigrationReport {
        let layout = self.layout
        let report = try await threads.runIfActive {
            try self.transaction(readOnly: false, isolation: .readCommitted) { connection in
                try connection.execute("SELECT pg_advisory_xact_lock(\(PostgreSQLConnection.migrationLock))")
                try connection.execute(
                    "CREATE TABLE IF NOT EXISTS _herald_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"
                )
                return try SchemaMigrator(schema: schema, allowDestructive: allowDestructive)
                    .migrate(PostgreSQLCatalog(connection: connection), layout: layout)
            }
        }
        for change in report.changes { logger.info("migration: \(change)") }
        knownGeneration.withLock { $0 = report.generation }
        return report
    }
}

/// PostgreSQL's catalog and table definitions for ``SchemaMigrator``: identity columns for the
/// event log and link order, trigger functions where one foreign key cannot do the cleaning up.
struct PostgreSQLCatalog: MigrationCatalog {
    let connection: any SQLConnection

    func tableNames() throws -> Set<String> {
        Set(
            try connection.rows(
                """
                SELECT table_name AS name FROM information_schema.tables
                WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                """
            ).map { $0.text("name") }
        )
    }

    func columns(of table: String) throws -> [(name: String, type: String)] {
        var arguments = SQLArguments(.postgresql)
        return try connection.rows(
            """
            SELECT column_name AS name, upper(data_type) AS type FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = \(arguments.add(table)) ORDER BY ordinal_position
            """,
            arguments
        ).map { ($0.text("name"), $0.text("type")) }
    }

    func propertyIndexes(on table: String) throws -> [String] {
        var arguments = SQLArguments(.postgresql)
        return try connection.rows(
            """
            SELECT indexname AS name FROM pg_indexes WHERE schemaname = current_schema()
            AND tablename = \(arguments.add(table)) AND (indexname LIKE 'ix\\_%' OR indexname LIKE 'ux\\_%')
            """,
            arguments
        ).map { $0.text("name") }
    }

    /// PostgreSQL drops a column's indexes with the column.
    func dropIndexes(on table: String, column: String) throws -> [String] { [] }

    func createTable(_ type: TypeDefinition) -> [String] {
        let columns =
            SchemaMigrator.systemColumnDefinitions(.postgresql)
            + type.properties.values.sorted { $0.name < $1.name }.map {
                SchemaMigrator.columnDefinition($0, .postgresql)
            }
        return ["CREATE TABLE \(SQLName.table(type.name)) (\(columns.joined(separator: ", ")))"]
    }

    func supportTables(_ schema: Schema) -> [String] {
        var statements = [
            """
            CREATE TABLE IF NOT EXISTS _herald_sessions (
              key TEXT PRIMARY KEY NOT NULL,
              "userID" TEXT NOT NULL REFERENCES "User"(id) ON DELETE CASCADE,
              created BIGINT NOT NULL,
              "lastSeen" BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS _herald_security (
              principal TEXT NOT NULL,
              node TEXT NOT NULL,
              read BIGINT NOT NULL DEFAULT 0,
              write BIGINT NOT NULL DEFAULT 0,
              "delete" BIGINT NOT NULL DEFAULT 0,
              "accessControl" BIGINT NOT NULL DEFAULT 0,
              PRIMARY KEY (principal, node)
            )
            """,
            "CREATE INDEX IF NOT EXISTS _herald_security_node ON _herald_security(node)",
            // Which nodes sharing the database have streams open for which users (presence for
            // `$.sendEvent`), and when each node was last alive.
            "CREATE TABLE IF NOT EXISTS _herald_nodes (node TEXT PRIMARY KEY NOT NULL, seen BIGINT NOT NULL)",
            """
            CREATE TABLE IF NOT EXISTS _herald_presence (
              node TEXT NOT NULL, "user" TEXT NOT NULL, PRIMARY KEY ("user", node)
            )
            """,
            // The event log: ids from an identity column, taken under the event log's advisory
            // lock (``PostgreSQLConnection/appendStatement(_:)``), so they follow commit order.
            """
            CREATE TABLE IF NOT EXISTS _herald_events (
              id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              type TEXT NOT NULL,
              data TEXT NOT NULL,
              audience TEXT NOT NULL,
              created BIGINT NOT NULL
            )
            """,
            // Fails a transaction whose snapshot is not at the schema generation it expects
            // (``PostgreSQLConnection``): checked with its first statement instead of read first.
            """
            CREATE OR REPLACE FUNCTION _herald_expect_generation(expected BIGINT) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
              IF (SELECT value FROM _herald_meta WHERE key = '\(SQLTransaction.generationKey)') IS DISTINCT FROM expected::text THEN
                RAISE EXCEPTION 'the schema generation is no longer %', expected USING ERRCODE = '\(PostgreSQLErrors.generationChanged)';
              END IF;
            END $$
            """,
            """
            CREATE OR REPLACE FUNCTION _herald_security_cleanup() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN DELETE FROM _herald_security WHERE node = OLD.id OR principal = OLD.id; RETURN OLD; END $$
            """,
            """
            CREATE OR REPLACE FUNCTION _herald_link_cleanup() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN EXECUTE format('DELETE FROM %I WHERE target = $1', TG_ARGV[0]) USING OLD.id; RETURN OLD; END $$
            """,
        ]
        // Grants go when their object or principal goes; objects live in one table per type.
        for type in schema.types.keys.sorted() {
            statements.append(
                """
                CREATE OR REPLACE TRIGGER \(SQLName.quoted("_herald_security_delete_\(type)"))
                AFTER DELETE ON \(SQLName.table(type)) FOR EACH ROW EXECUTE FUNCTION _herald_security_cleanup()
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
              seq BIGINT GENERATED ALWAYS AS IDENTITY,
              source TEXT NOT NULL REFERENCES \(SQLName.table(relationship.sourceType))(id) ON DELETE CASCADE,
              \(targetColumn),
              "targetType" TEXT NOT NULL,
              UNIQUE (source, target)
            )
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
                let literal = "'" + name.replacingOccurrences(of: "'", with: "''") + "'"
                statements.append(
                    """
                    CREATE OR REPLACE TRIGGER \(SQLName.quoted("\(name)_delete"))
                    AFTER DELETE ON \(SQLName.table(target)) FOR EACH ROW EXECUTE FUNCTION _herald_link_cleanup(\(literal))
                    """
                )
            }
        }
        return statements
    }

    func isUniquenessViolation(_ error: any Error) -> Bool {
        PostgreSQLErrors.sqlState(error) == "23505"
    }
}
