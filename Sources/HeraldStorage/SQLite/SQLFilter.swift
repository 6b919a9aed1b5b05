import GRDB
import HeraldSchema

/// Translates a `Filter` into an SQL condition with bound arguments.
struct SQLFilter {
    let type: TypeDefinition

    func column(_ property: String) throws -> (sql: String, type: PropertyType) {
        if property == SystemProperty.id || property == SystemProperty.owner {
            return (property.quotedDatabaseIdentifier, .string)
        }
        guard let definition = type.property(named: property), !definition.writeOnly else {
            throw StorageError.unknownProperty(type: type.name, property: property)
        }
        return (property.quotedDatabaseIdentifier, definition.type)
    }

    func sql(_ filter: Filter, _ arguments: inout StatementArguments) throws -> String {
        switch filter {
        case .compare(let property, let op, let value):
            let (column, propertyType) = try column(property)
            if value.isNull {
                switch op {
                case .equal: return "\(column) IS NULL"
                default: return "0"
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
            arguments += [SQLValue.bind(value, for: propertyType)]
            return "\(column) \(symbol) ?"
        case .anyOf(let property, let values):
            guard !values.isEmpty else { return "0" }
            let (column, propertyType) = try column(property)
            var parts: [String] = []
            let nonNull = values.filter { !$0.isNull }
            if !nonNull.isEmpty {
                parts.append("\(column) IN (\(Array(repeating: "?", count: nonNull.count).joined(separator: ", ")))")
                for value in nonNull { arguments += [SQLValue.bind(value, for: propertyType)] }
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
                arguments += [pattern]
                return "lower(\(column)) LIKE lower(?) ESCAPE '\\'"
            }
            if text.isEmpty { return "\(column) IS NOT NULL" }
            switch match {
            case .contains:
                arguments += [text]
                return "instr(\(column), ?) > 0"
            case .startsWith:
                arguments += [text, text]
                return "substr(\(column), 1, length(?)) = ?"
            case .endsWith:
                arguments += [text, text]
                return "substr(\(column), -length(?)) = ?"
            }
        case .isEmpty(let property):
            let (column, _) = try column(property)
            return "(\(column) IS NULL OR \(column) = '')"
        case .related(let name, let ids):
            guard let end = type.relationships[name] else {
                throw StorageError.unknownProperty(type: type.name, property: name)
            }
            guard !ids.isEmpty else { return "0" }
            let placeholders = Array(repeating: "?", count: ids.count).joined(separator: ", ")
            for id in ids { arguments += [id] }
            let table = Layout.linkTable(end.relationship)
            switch end.direction {
            case .outgoing: return "id IN (SELECT source FROM \(table) WHERE target IN (\(placeholders)))"
            case .incoming: return "id IN (SELECT target FROM \(table) WHERE source IN (\(placeholders)))"
            }
        case .hasRelated(let name):
            guard let end = type.relationships[name] else {
                throw StorageError.unknownProperty(type: type.name, property: name)
            }
            let table = Layout.linkTable(end.relationship)
            switch end.direction {
            case .outgoing: return "id IN (SELECT source FROM \(table))"
            case .incoming: return "id IN (SELECT target FROM \(table))"
            }
        case .visibleTo(let userID, let principals):
            guard let userID else { return "visibleToPublicUsers = 1" }
            arguments += [userID, userID]
            var sql = "(visibleToAuthenticatedUsers = 1 OR owner = ? OR id = ?"
            if !principals.isEmpty {
                sql += " OR id IN (SELECT node FROM _herald_security WHERE read = 1 AND principal IN ("
                sql += Array(repeating: "?", count: principals.count).joined(separator: ", ") + "))"
                for principal in principals { arguments += [principal] }
            }
            return sql + ")"
        case .and(let filters):
            guard !filters.isEmpty else { return "1" }
            return "(" + (try filters.map { try sql($0, &arguments) }).joined(separator: " AND ") + ")"
        case .or(let filters):
            guard !filters.isEmpty else { return "0" }
            return "(" + (try filters.map { try sql($0, &arguments) }).joined(separator: " OR ") + ")"
        case .not(let inner):
            // SQL's NULL would make `NOT (x = 1)` drop rows without a value; treat unknown as false.
            return "NOT COALESCE((" + (try sql(inner, &arguments)) + "), 0)"
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
