import Foundation
import HeraldSchema

/// Translates a `Filter` into an SQL condition with bound arguments, in either backend's SQL.
struct SQLFilter {
    let type: TypeDefinition

    func column(_ property: String) throws -> (sql: String, type: PropertyType) {
        if property == SystemProperty.id || property == SystemProperty.owner {
            return (SQLName.quoted(property), .string)
        }
        guard let definition = type.property(named: property), !definition.writeOnly else {
            throw StorageError.unknownProperty(type: type.name, property: property)
        }
        return (SQLName.quoted(property), definition.type)
    }

    func sql(_ filter: Filter, _ arguments: inout SQLArguments) throws -> String {
        let dialect = arguments.dialect
        switch filter {
        case .compare(let property, let op, let value):
            let (column, propertyType) = try column(property)
            if value.isNull {
                switch op {
                case .equal: return "\(column) IS NULL"
                default: return dialect.alwaysFalse
                }
            }
            let symbol: String
            switch op {
            case .equal: symbol = "="
            case .less: symbol = "<"
            case .lessOrEqual: symbol = "<="
            case .greater: symbol = ">"
            case .greaterOrEqual: symbol = ">="
            }
            return "\(column) \(symbol) \(arguments.add(SQLArgument(value, for: propertyType)))"
        case .anyOf(let property, let values):
            guard !values.isEmpty else { return dialect.alwaysFalse }
            let (column, propertyType) = try column(property)
            var parts: [String] = []
            let nonNull = values.filter { !$0.isNull }
            if !nonNull.isEmpty {
                parts.append("\(column) IN (\(arguments.list(nonNull.map { SQLArgument($0, for: propertyType) })))")
            }
            if nonNull.count < values.count { parts.append("\(column) IS NULL") }
            return "(" + parts.joined(separator: " OR ") + ")"
        case .text(let property, let match, let text, let caseInsensitive):
            let (column, _) = try column(property)
            if caseInsensitive {
                let escaped = Self.escapeLike(text)
                let pattern: String
                switch match {
                case .contains: pattern = "%\(escaped)%"
                case .startsWith: pattern = "\(escaped)%"
                case .endsWith: pattern = "%\(escaped)"
                }
                return "lower(\(column)) LIKE lower(\(arguments.add(pattern))) ESCAPE '\\'"
            }
            if text.isEmpty { return "\(column) IS NOT NULL" }
            switch (match, dialect) {
            case (.contains, .sqlite): return "instr(\(column), \(arguments.add(text))) > 0"
            case (.contains, .postgresql): return "strpos(\(column), \(arguments.add(text))) > 0"
            case (.startsWith, .sqlite):
                return "substr(\(column), 1, length(\(arguments.add(text)))) = \(arguments.add(text))"
            case (.startsWith, .postgresql):
                return "left(\(column), length(\(arguments.add(text)))) = \(arguments.add(text))"
            case (.endsWith, .sqlite):
                return "substr(\(column), -length(\(arguments.add(text)))) = \(arguments.add(text))"
            case (.endsWith, .postgresql):
                return "right(\(column), length(\(arguments.add(text)))) = \(arguments.add(text))"
            }
        case .isEmpty(let property):
            let (column, _) = try column(property)
            return "(\(column) IS NULL OR \(column) = '')"
        case .related(let name, let ids):
            guard let end = type.relationships[name] else {
                throw StorageError.unknownProperty(type: type.name, property: name)
            }
            guard !ids.isEmpty else { return dialect.alwaysFalse }
            let table = SQLName.linkTable(end.relationship)
            let placeholders = arguments.list(ids.map(SQLArgument.text))
            switch end.direction {
            case .outgoing: return "id IN (SELECT source FROM \(table) WHERE target IN (\(placeholders)))"
            case .incoming: return "id IN (SELECT target FROM \(table) WHERE source IN (\(placeholders)))"
            }
        case .hasRelated(let name):
            guard let end = type.relationships[name] else {
                throw StorageError.unknownProperty(type: type.name, property: name)
            }
            let table = SQLName.linkTable(end.relationship)
            switch end.direction {
            case .outgoing: return "id IN (SELECT source FROM \(table))"
            case .incoming: return "id IN (SELECT target FROM \(table))"
            }
        case .visibleTo(let userID, let principals):
            guard let userID else { return "\"visibleToPublicUsers\" = 1" }
            var sql =
                "(\"visibleToAuthenticatedUsers\" = 1 OR owner = \(arguments.add(userID)) OR id = \(arguments.add(userID))"
            if !principals.isEmpty {
                sql += " OR id IN (SELECT node FROM _herald_security WHERE read = 1 AND principal IN ("
                sql += arguments.list(principals.map(SQLArgument.text)) + "))"
            }
            return sql + ")"
        case .and(let filters):
            guard !filters.isEmpty else { return dialect.alwaysTrue }
            return "(" + (try filters.map { try sql($0, &arguments) }).joined(separator: " AND ") + ")"
        case .or(let filters):
            guard !filters.isEmpty else { return dialect.alwaysFalse }
            return "(" + (try filters.map { try sql($0, &arguments) }).joined(separator: " OR ") + ")"
        case .not(let inner):
            // SQL's NULL would make `NOT (x = 1)` drop rows without a value; treat unknown as false.
            return "NOT COALESCE((" + (try sql(inner, &arguments)) + "), \(dialect.alwaysFalse))"
        }
    }

    static func escapeLike(_ s: String) -> String {
        var out = ""
        for c in s {
            if c == "%" || c == "_" || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out
    }
}

/// Table and column names as both backends quote them.
enum SQLName {
    /// `name` as a quoted identifier: `"name"`, inner quotes doubled.
    static func quoted(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func table(_ type: String) -> String { quoted(type) }

    static func linkTableName(_ relationship: Relationship) -> String {
        "_rel_\(relationship.sourceType)_\(relationship.name)"
    }

    static func linkTable(_ relationship: Relationship) -> String { quoted(linkTableName(relationship)) }
}
