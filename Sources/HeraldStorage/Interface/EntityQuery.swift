import HeraldSchema

/// A query over one type: a filter, a sort order and a page.
public struct EntityQuery: Sendable, Hashable {
    public var type: String
    public var filter: Filter?
    public var sort: [SortKey]
    /// At most this many results.
    public var limit: Int?
    /// Results skipped before the first returned.
    public var offset: Int

    public init(type: String, filter: Filter? = nil, sort: [SortKey] = [], limit: Int? = nil, offset: Int = 0) {
        self.type = type
        self.filter = filter
        self.sort = sort
        self.limit = limit
        self.offset = offset
    }
}

/// One sort key; ties are always broken by id so paging is stable.
public struct SortKey: Sendable, Hashable {
    public var property: String
    public var descending: Bool

    public init(_ property: String, descending: Bool = false) {
        self.property = property
        self.descending = descending
    }
}

/// A condition on an object's values or links. Values are canonical (see `coerce`).
public indirect enum Filter: Sendable, Hashable {
    public enum Comparison: Sendable, Hashable {
        case equal, less, lessOrEqual, greater, greaterOrEqual
    }

    public enum TextMatch: Sendable, Hashable {
        case contains, startsWith, endsWith
    }

    /// `property <op> value`; `.equal` to `null` matches objects without a value.
    case compare(String, Comparison, JSONValue)
    /// The property equals one of the values.
    case anyOf(String, [JSONValue])
    /// Substring matching on a text property.
    case text(String, TextMatch, String, caseInsensitive: Bool)
    /// The property has no value (null or empty string).
    case isEmpty(String)
    /// The relationship end holds at least one object with one of these ids.
    case related(String, [String])
    /// The relationship end holds at least one object.
    case hasRelated(String)
    /// Objects the caller may read: anonymous callers (`userID` nil) see `visibleToPublicUsers`;
    /// users see `visibleToAuthenticatedUsers`, what they own, and what a grant to one of
    /// `principals` lets them read.
    case visibleTo(userID: String?, principals: [String])
    case and([Filter])
    case or([Filter])
    case not(Filter)

    /// `lower <= property <= upper`, either end open.
    public static func range(_ property: String, _ lower: JSONValue?, _ upper: JSONValue?) -> Filter {
        var parts: [Filter] = []
        if let lower { parts.append(.compare(property, .greaterOrEqual, lower)) }
        if let upper { parts.append(.compare(property, .lessOrEqual, upper)) }
        return parts.count == 1 ? parts[0] : .and(parts)
    }
}
