import Foundation
import HeraldApplication
import HeraldSchema
import HeraldStorage
import Hummingbird

/// The query parameters of a collection GET, parsed against a type.
package struct RESTQuery {
    var query: EntityQuery
    var page: Int?
    var pageSize: Int?
    var nestingDepth: Int

    static let maximumPageSize = 10_000
    /// The most query parameters, and filter values across them, one request may carry.
    static let maximumParameters = 100
    static let maximumFilterValues = 1000

    /// Parses `_page`, `_pageSize`, `_sort`, `_order`, `_inexact`, `_outputNestingDepth` and
    /// property or relationship filters. Throws a 400 `RESTError` naming the bad parameter.
    package init(type: TypeDefinition, parameters: [(String, String)]) throws {
        var filters: [Filter] = []
        var sortKeys: [String] = []
        var orders: [String] = []
        var inexact = false
        var page: Int?
        var pageSize: Int?
        var depth = Nesting.defaultDepth
        func integer(_ name: String, _ value: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let n = Int(value), range.contains(n) else {
                throw RESTError(
                    .badRequest,
                    "Query parameter \(name) must be an integer in \(range.lowerBound)...\(range.upperBound)"
                )
            }
            return n
        }
        var propertyParameters: [(String, String)] = []
        guard parameters.count <= Self.maximumParameters else {
            throw RESTError(
                .badRequest,
                "Too many query parameters (\(parameters.count)); at most \(Self.maximumParameters) are taken"
            )
        }
        let values = parameters.reduce(0) { $0 + $1.1.split(separator: ";").count }
        guard values <= Self.maximumFilterValues else {
            throw RESTError(
                .badRequest,
                "Too many filter values (\(values)); at most \(Self.maximumFilterValues) across all parameters"
            )
        }
        for (given, value) in parameters {
            // Structr's older names (`sort`, `order`, `page`, `pageSize`) mean the same, unless
            // the type has a property of that name to filter on.
            let name = Self.legacyNames[given].flatMap { type.property(named: given) == nil ? $0 : nil } ?? given
            switch name {
            case "_page": page = try integer(given, value, 1...Int(Int32.max))
            case "_pageSize": pageSize = try integer(given, value, 1...Self.maximumPageSize)
            case "_sort": sortKeys.append(value)
            case "_order": orders.append(value.lowercased())
            case "_inexact", "_loose": inexact = ["1", "true"].contains(value.lowercased())
            case "_outputNestingDepth": depth = try Self.nestingDepth(value)
            default:
                if name.hasPrefix("_") { continue }  // other Structr options are accepted and ignored
                propertyParameters.append((name, value))
            }
        }
        for (name, value) in propertyParameters {
            filters.append(try Self.filter(type: type, name: name, value: value, inexact: inexact))
        }
        var sort: [SortKey] = []
        for (index, key) in sortKeys.enumerated() {
            guard
                key == SystemProperty.id || key == SystemProperty.owner
                    || type.property(named: key).map({ !$0.writeOnly }) == true
            else {
                throw RESTError(.badRequest, "Cannot sort by '\(key)': \(type.name) has no such property")
            }
            let order = index < orders.count ? orders[index] : (orders.last ?? "asc")
            guard order == "asc" || order == "desc" else {
                throw RESTError(.badRequest, "Query parameter _order must be asc or desc")
            }
            sort.append(SortKey(key, descending: order == "desc"))
        }
        if page != nil, pageSize == nil { pageSize = 20 }
        var query = EntityQuery(type: type.name, filter: filters.isEmpty ? nil : .and(filters), sort: sort)
        if let pageSize {
            query.limit = pageSize
            query.offset = ((page ?? 1) - 1) * pageSize
        }
        self.query = query
        self.page = pageSize == nil ? nil : (page ?? 1)
        self.pageSize = pageSize
        self.nestingDepth = depth
    }

    /// The value of `_outputNestingDepth`, checked.
    static func nestingDepth(_ value: String) throws -> Int {
        guard let depth = Int(value), (0...Nesting.maximumDepth).contains(depth) else {
            throw RESTError(
                .badRequest,
                "Query parameter _outputNestingDepth must be an integer in 0...\(Nesting.maximumDepth)"
            )
        }
        return depth
    }

    /// Structr's legacy parameter names and the ones they stand for.
    static let legacyNames = ["sort": "_sort", "order": "_order", "page": "_page", "pageSize": "_pageSize"]

    static func filter(type: TypeDefinition, name: String, value: String, inexact: Bool) throws -> Filter {
        if let end = type.relationships[name] {
            // `rel=`, `rel=null` and `rel=[]`: no related object. `a;b`: related to either,
            // `a,b`: related to all of them, as in Structr.
            if ["", "null", "[]"].contains(value) { return .not(.hasRelated(end.name)) }
            let all = value.contains(",")
            let ids = value.split(separator: all ? "," : ";", omittingEmptySubsequences: true).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard !ids.isEmpty, ids.allSatisfy(EntityID.isValid) else {
                throw RESTError(
                    .badRequest,
                    "Query parameter \(name) must be an id, ids separated by ';' (any) or ',' (all), or empty (none)"
                )
            }
            return all ? .and(ids.map { .related(end.name, [$0]) }) : .related(end.name, ids)
        }
        let property: PropertyDefinition
        if name == SystemProperty.id || name == SystemProperty.owner {
            property = PropertyDefinition(name: name, type: .string)
        } else if let p = type.property(named: name), !p.writeOnly {
            property = p
        } else {
            throw RESTError(
                .badRequest,
                "Unknown query parameter '\(name)': \(type.name) has no such property",
                errors: [FieldError(token: "unknown_property", type: type.name, property: name).json]
            )
        }
        func convert(_ text: String) throws -> JSONValue {
            let raw: JSONValue
            switch property.type {
            case .integer, .number:
                guard let parsed = try? JSONValue(parsing: text), parsed.doubleValue != nil else {
                    throw RESTError(.badRequest, "Query parameter \(name): '\(text)' is not a number")
                }
                raw = parsed
            case .boolean:
                guard text == "true" || text == "false" else {
                    throw RESTError(.badRequest, "Query parameter \(name): '\(text)' is not true or false")
                }
                raw = .bool(text == "true")
            case .json:
                raw = (try? JSONValue(parsing: text)) ?? .string(text)
            default:
                raw = .string(text)
            }
            do {
                return try property.coerce(raw)
            } catch {
                throw RESTError(.badRequest, "Query parameter \(name): \(error.detail)")
            }
        }
        if value.isEmpty { return .isEmpty(name) }
        // `prop=[]`: an empty list, or no value at all.
        if value == "[]", property.type == .json { return .or([.isEmpty(name), .compare(name, .equal, .array([]))]) }
        // Range: [a TO b], either end may be empty or '*'.
        if value.hasPrefix("["), value.hasSuffix("]"), let separator = value.range(of: " TO ") {
            let lower = value[value.index(after: value.startIndex)..<separator.lowerBound].trimmingCharacters(
                in: .whitespaces
            )
            let upper = value[separator.upperBound..<value.index(before: value.endIndex)].trimmingCharacters(
                in: .whitespaces
            )
            let low = lower.isEmpty || lower == "*" ? nil : try convert(lower)
            let high = upper.isEmpty || upper == "*" ? nil : try convert(upper)
            if low == nil, high == nil { return .not(.isEmpty(name)) }
            return .range(name, low, high)
        }
        let alternatives = value.split(separator: ";", omittingEmptySubsequences: true).map(String.init)
        let textual: Bool
        switch property.type {
        case .string, .enumeration: textual = true
        default: textual = false
        }
        if inexact, textual {
            let parts = alternatives.map { Filter.text(name, .contains, $0, caseInsensitive: true) }
            return parts.count == 1 ? parts[0] : .or(parts)
        }
        let values = try alternatives.map(convert)
        return values.count == 1 ? .compare(name, .equal, values[0]) : .anyOf(name, values)
    }
}
