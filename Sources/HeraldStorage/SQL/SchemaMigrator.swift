import HeraldSchema

/// What the migrator needs from a backend: its catalog (tables, columns, indexes) and the
/// statements that create its tables, each in its own SQL.
protocol MigrationCatalog {
    var connection: any SQLConnection { get }

    /// Every table's name.
    func tableNames() throws -> Set<String>

    /// The columns of `table`, each with its declared type, upper-case.
    func columns(of table: String) throws -> [(name: String, type: String)]

    /// The names of the `ix_` and `ux_` indexes on `table`.
    func propertyIndexes(on table: String) throws -> [String]

    /// Statements that drop the indexes on `column` before the column itself is dropped.
    func dropIndexes(on table: String, column: String) throws -> [String]

    /// The statements that create the table of a new type.
    func createTable(_ type: TypeDefinition) -> [String]

    /// The statements that create (if missing) the sessions, grants and event log tables and
    /// the triggers that drop grants with their object.
    func supportTables(_ schema: Schema) -> [String]

    /// The statements that create a relationship's link table.
    func createLinkTable(_ relationship: Relationship) -> [String]

    /// Whether an error is a uniqueness violation (an index that cannot be made unique).
    func isUniquenessViolation(_ error: any Error) -> Bool
}

/// Brings the tables to a schema: additive changes always, data-losing ones only when allowed.
///
/// The schema last applied is kept in `_herald_meta` under `schema`, so a property whose type
/// changed is recognised even when the SQL column type is the same.
struct SchemaMigrator {
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
                relationships[SQLName.linkTableName(relationship)] = relationship.targetTypes
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

    /// The system columns every type's table starts with.
    static func systemColumnDefinitions(_ dialect: SQLDialect) -> [String] {
        let integer = dialect.columnType(.integer)
        return [
            "id TEXT PRIMARY KEY NOT NULL",
            "\(SQLName.quoted(SystemProperty.createdDate)) TEXT NOT NULL",
            "\(SQLName.quoted(SystemProperty.lastModifiedDate)) TEXT NOT NULL",
            "\(SQLName.quoted(SystemProperty.owner)) TEXT REFERENCES \(SQLName.table(BuiltInType.user))(id) ON DELETE SET NULL",
            "\(SQLName.quoted(SystemProperty.visibleToPublicUsers)) \(integer) NOT NULL DEFAULT 0",
            "\(SQLName.quoted(SystemProperty.visibleToAuthenticatedUsers)) \(integer) NOT NULL DEFAULT 0",
        ]
    }

    static func columnDefinition(_ property: PropertyDefinition, _ dialect: SQLDialect) -> String {
        "\(SQLName.quoted(property.name)) \(dialect.columnType(property.type))"
    }

    private func count(_ sql: String, _ catalog: some MigrationCatalog) throws -> Int {
        Int(try catalog.connection.integer(sql, SQLArguments(catalog.connection.dialect)) ?? 0)
    }

    func run(_ catalog: some MigrationCatalog) throws -> MigrationReport {
        let connection = catalog.connection
        let dialect = connection.dialect
        let applied =
            try SQLTransaction.metadata(Self.stateKey, connection)
            .flatMap { try? JSONValue(parsing: $0) }
            .map(State.init(json:)) ?? State()
        let desired = State(schema)
        let tables = try catalog.tableNames()
        let typeTables = tables.filter { !$0.hasPrefix("_") && !$0.hasPrefix("sqlite_") }
        let linkTables = tables.filter { $0.hasPrefix("_rel_") }

        var destructive: [String] = []
        var steps: [(description: String, sql: [String])] = []

        // Relationships that are gone or point elsewhere now.
        for table in linkTables.sorted() {
            let targets = desired.relationships[table]
            let links = try count("SELECT COUNT(*) FROM \(SQLName.quoted(table))", catalog)
            if targets == nil {
                destructive.append("remove relationship table \(table) (\(links) links)")
                steps.append(("dropped \(table)", ["DROP TABLE \(SQLName.quoted(table))"]))
            } else if let old = applied.relationships[table], old != targets {
                destructive.append(
                    "retarget \(table) from \(old.joined(separator: "|")) to \(targets!.joined(separator: "|")) (\(links) links)"
                )
                steps.append(("dropped \(table) to retarget it", ["DROP TABLE \(SQLName.quoted(table))"]))
            }
        }
        // Types that are gone.
        for table in typeTables.sorted() where schema.types[table] == nil {
            let objects = try count("SELECT COUNT(*) FROM \(SQLName.quoted(table))", catalog)
            destructive.append("remove type \(table) (\(objects) objects)")
            let cascade = dialect == .postgresql ? " CASCADE" : ""
            steps.append(("dropped type \(table)", ["DROP TABLE \(SQLName.quoted(table))\(cascade)"]))
        }
        // Properties that are gone or retyped.
        for type in schema.types.values where typeTables.contains(type.name) {
            let table = SQLName.table(type.name)
            for column in try catalog.columns(of: type.name) where !Self.systemColumns.contains(column.name) {
                let values = try count(
                    "SELECT COUNT(*) FROM \(table) WHERE \(SQLName.quoted(column.name)) IS NOT NULL",
                    catalog
                )
                let dropIndexes = try catalog.dropIndexes(on: type.name, column: column.name)
                let dropColumn = "ALTER TABLE \(table) DROP COLUMN \(SQLName.quoted(column.name))"
                guard let property = type.properties[column.name] else {
                    destructive.append("remove property \(type.name).\(column.name) (\(values) values)")
                    steps.append(("dropped property \(type.name).\(column.name)", dropIndexes + [dropColumn]))
                    continue
                }
                let oldType = applied.properties[type.name]?[column.name]
                let retyped =
                    oldType.map { $0 != property.type.name } ?? (column.type != dialect.columnType(property.type))
                if retyped {
                    destructive.append(
                        "retype property \(type.name).\(column.name) from \(oldType ?? column.type) to \(property.type.name) (\(values) values)"
                    )
                    steps.append(
                        (
                            "retyped property \(type.name).\(column.name)",
                            dropIndexes + [
                                dropColumn,
                                "ALTER TABLE \(table) ADD COLUMN \(Self.columnDefinition(property, dialect))",
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
            for sql in step.sql { try connection.execute(sql) }
            report.changes.append(step.description)
        }
        // New types and properties; users first, as every other table's owner refers to them.
        let types = schema.types.values.sorted {
            ($0.name == BuiltInType.user ? 0 : 1, $0.name) < ($1.name == BuiltInType.user ? 0 : 1, $1.name)
        }
        for type in types {
            let table = SQLName.table(type.name)
            if !typeTables.contains(type.name) {
                for sql in catalog.createTable(type) { try connection.execute(sql) }
                report.changes.append("created type \(type.name)")
                continue
            }
            let existing = Set(try catalog.columns(of: type.name).map(\.name))
            for property in type.properties.values.sorted(by: { $0.name < $1.name })
            where !existing.contains(property.name) {
                try connection.execute("ALTER TABLE \(table) ADD COLUMN \(Self.columnDefinition(property, dialect))")
                if let defaultValue = property.defaultValue {
                    var arguments = SQLArguments(dialect)
                    let value = arguments.add(SQLArgument(defaultValue, for: property.type))
                    try connection.execute("UPDATE \(table) SET \(SQLName.quoted(property.name)) = \(value)", arguments)
                }
                report.changes.append("added property \(type.name).\(property.name)")
            }
        }
        for sql in catalog.supportTables(schema) { try connection.execute(sql) }
        try migrateIndexes(catalog, &report)
        // Link tables last: they refer to their types' tables. A dropped one is gone from the catalog.
        let current = try catalog.tableNames()
        for relationship in schema.relationships where !current.contains(SQLName.linkTableName(relationship)) {
            for sql in catalog.createLinkTable(relationship) { try connection.execute(sql) }
            report.changes.append("created relationship \(relationship.key)")
        }
        try SQLTransaction.setMetadata(Self.stateKey, desired.json.jsonString, connection)
        return report
    }

    /// Runs the migration in the catalog's transaction, starts the next schema generation and
    /// registers `schema` as its own in `layout`, before the commit, so no transaction can see
    /// the generation without its schema.
    func migrate(_ catalog: some MigrationCatalog, layout: Layout) throws -> MigrationReport {
        let connection = catalog.connection
        var report = try run(catalog)
        report.generation = try SQLTransaction.generation(connection) + 1
        try SQLTransaction.setMetadata(SQLTransaction.generationKey, String(report.generation), connection)
        layout.register(schema, generation: report.generation)
        return report
    }

    /// Creates the indexes `indexed` and `unique` ask for and drops the ones no longer asked for.
    func migrateIndexes(_ catalog: some MigrationCatalog, _ report: inout MigrationReport) throws {
        let connection = catalog.connection
        for type in schema.types.values.sorted(by: { $0.name < $1.name }) {
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
            let existing = try catalog.propertyIndexes(on: type.name)
            for index in existing where desired[index] == nil {
                try connection.execute("DROP INDEX \(SQLName.quoted(index))")
                report.changes.append("dropped index \(index)")
            }
            let existingNames = Set(existing)
            for (name, spec) in desired.sorted(by: { $0.key < $1.key }) where !existingNames.contains(name) {
                do {
                    try connection.execute(
                        "CREATE \(spec.unique ? "UNIQUE " : "")INDEX \(SQLName.quoted(name)) ON \(SQLName.table(type.name))(\(SQLName.quoted(spec.column)))"
                    )
                } catch  where catalog.isUniquenessViolation(error) {
                    throw MigrationError(
                        message: "cannot make \(type.name).\(spec.column) unique: existing objects share a value"
                    )
                }
                report.changes.append("created index \(name)")
            }
        }
    }
}

/// A migration that cannot be applied as asked.
public struct MigrationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
