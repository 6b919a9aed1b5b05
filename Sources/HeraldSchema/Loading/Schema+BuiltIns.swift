extension Schema {
    /// The built-in types' own properties, before type files add to them.
    static let builtInProperties: [String: [PropertyDefinition]] = [
        BuiltInType.user: [
            PropertyDefinition(name: "name", type: .string, unique: true, indexed: true),
            PropertyDefinition(name: "eMail", type: .string, unique: true, indexed: true),
            PropertyDefinition(name: "password", type: .password, writeOnly: true),
            PropertyDefinition(name: "isAdmin", type: .boolean, defaultValue: false),
        ],
        BuiltInType.group: [
            PropertyDefinition(name: "name", type: .string, indexed: true)
        ],
        BuiltInType.resourceAccess: [
            PropertyDefinition(name: "signature", type: .string, required: true, unique: true, indexed: true),
            PropertyDefinition(name: "flags", type: .integer, defaultValue: 0),
        ],
    ]

    /// Built-in relationships: a group's members are users and groups, so groups nest.
    static let builtInRelationships: [Relationship] = [
        Relationship(
            sourceType: BuiltInType.group,
            name: "members",
            targetTypes: [BuiltInType.user, BuiltInType.group],
            cardinality: .many,
            inverseName: "groups",
            inverseCardinality: .many
        )
    ]
}
