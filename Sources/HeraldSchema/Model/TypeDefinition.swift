/// An entity type: its properties, relationship ends and methods.
public struct TypeDefinition: Sendable, Hashable {
    public var name: String
    /// Declared and built-in properties, without the system properties every type shares.
    public var properties: OrderedDictionary<String, PropertyDefinition>
    /// Both outgoing and incoming relationship ends, by property name.
    public var relationships: OrderedDictionary<String, RelationshipEnd>
    /// Methods and lifecycle hooks from `schema/<Type>/*.js`.
    public var methods: [MethodDefinition]
    /// `User`, `Group` and `ResourceAccess` exist without a file.
    public var isBuiltIn: Bool
    /// The type file, if there is one.
    public var file: String?
    /// Custom views from the type file: each a name and the properties and relationships it
    /// shows, besides `id` and `type`.
    public var views: OrderedDictionary<String, [String]> = [:]

    /// The built-in views: `public` (the default) and `all` (with `ui` as Structr's other name for
    /// it) show every readable property.
    public static let builtInViews: Set<String> = ["public", "all", "ui"]

    /// Whether `name` is a view of this type, built-in or custom.
    public func hasView(_ name: String) -> Bool {
        Self.builtInViews.contains(name) || views[name] != nil
    }

    public init(
        name: String,
        properties: OrderedDictionary<String, PropertyDefinition> = [:],
        relationships: OrderedDictionary<String, RelationshipEnd> = [:],
        methods: [MethodDefinition] = [],
        isBuiltIn: Bool = false,
        file: String? = nil
    ) {
        self.name = name
        self.properties = properties
        self.relationships = relationships
        self.methods = methods
        self.isBuiltIn = isBuiltIn
        self.file = file
    }

    /// The property, system properties included.
    public func property(named name: String) -> PropertyDefinition? {
        properties[name] ?? SystemProperty.definitions[name]
    }

    /// The lifecycle methods for `event`, in name order.
    public func hooks(for event: LifecycleEvent) -> [MethodDefinition] {
        methods.filter { $0.lifecycleEvent == event }.sorted { $0.name < $1.name }
    }
}

/// Properties every object has.
public enum SystemProperty {
    public static let id = "id"
    public static let type = "type"
    public static let createdDate = "createdDate"
    public static let lastModifiedDate = "lastModifiedDate"
    public static let owner = "owner"
    public static let visibleToPublicUsers = "visibleToPublicUsers"
    public static let visibleToAuthenticatedUsers = "visibleToAuthenticatedUsers"

    /// Names no type may declare.
    public static let names: Set<String> = [
        id, type, createdDate, lastModifiedDate, owner, visibleToPublicUsers, visibleToAuthenticatedUsers,
    ]

    /// The system properties that are stored as ordinary columns.
    public static let definitions: [String: PropertyDefinition] = [
        createdDate: PropertyDefinition(name: createdDate, type: .date, indexed: true, readOnly: true),
        lastModifiedDate: PropertyDefinition(name: lastModifiedDate, type: .date, indexed: true, readOnly: true),
        visibleToPublicUsers: PropertyDefinition(name: visibleToPublicUsers, type: .boolean, defaultValue: false),
        visibleToAuthenticatedUsers: PropertyDefinition(
            name: visibleToAuthenticatedUsers,
            type: .boolean,
            defaultValue: false
        ),
    ]
}
