/// The whole data model: types, relationships, global methods and the initial data.
public struct Schema: Sendable, Hashable {
    public var types: OrderedDictionary<String, TypeDefinition>
    public var relationships: [Relationship]
    public var globalMethods: [MethodDefinition]
    /// The content of `initial-data.json`, if the folder has one.
    public var initialData: JSONValue?
    /// Global methods run on a schedule, from `schedules.json`.
    public var schedules: [String: CronSchedule] = [:]
    /// Event types declared in `events.json`, by name.
    public var events: OrderedDictionary<String, EventDeclaration> = [:]
    /// Who may subscribe to which channels, from `channels.json`.
    public var channels = ChannelRules()

    public init(
        types: OrderedDictionary<String, TypeDefinition>,
        relationships: [Relationship],
        globalMethods: [MethodDefinition] = [],
        initialData: JSONValue? = nil
    ) {
        self.types = types
        self.relationships = relationships
        self.globalMethods = globalMethods
        self.initialData = initialData
    }

    /// The type named `name`.
    public subscript(type name: String) -> TypeDefinition? { types[name] }
}

/// Names of the built-in types.
public enum BuiltInType {
    public static let user = "User"
    public static let group = "Group"
    public static let resourceAccess = "ResourceAccess"
    public static let all = [user, group, resourceAccess]
}
