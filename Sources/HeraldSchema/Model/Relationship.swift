/// How many objects one end of a relationship holds.
public enum Cardinality: String, Sendable, Hashable {
    case one
    case many
}

/// The right on a relationship's target that linking it to a source, or unlinking it, needs.
///
/// The source (the type that declares the relationship) always needs write rights. A schema may
/// open its targets to anyone who can see them (`"targetLinkRight": "read"`): a comment may then
/// be attached to any visible post, while the comment itself still needs write rights.
public enum LinkRight: String, Sendable, Hashable {
    case read
    case write
}

/// A relationship declared on a source type, stored once and seen from both ends.
public struct Relationship: Sendable, Hashable {
    /// The type that declares it.
    public var sourceType: String
    /// Its name on the source type.
    public var name: String
    /// The types it may point to (one for declared relationships; `Group.members` holds two).
    public var targetTypes: [String]
    /// How many targets one source holds.
    public var cardinality: Cardinality
    /// Its name on the target types, if it has an inverse.
    public var inverseName: String?
    /// How many sources one target holds.
    public var inverseCardinality: Cardinality
    /// What linking or unlinking needs on a target (the source always needs write).
    public var targetLinkRight: LinkRight

    public init(
        sourceType: String,
        name: String,
        targetTypes: [String],
        cardinality: Cardinality,
        inverseName: String? = nil,
        inverseCardinality: Cardinality = .many,
        targetLinkRight: LinkRight = .write
    ) {
        self.targetLinkRight = targetLinkRight
        self.sourceType = sourceType
        self.name = name
        self.targetTypes = targetTypes
        self.cardinality = cardinality
        self.inverseName = inverseName
        self.inverseCardinality = inverseCardinality
    }

    /// A name that identifies it across the schema: `Source.name`.
    public var key: String { "\(sourceType).\(name)" }
}

/// One end of a relationship as a type sees it: a property that holds related objects.
public struct RelationshipEnd: Sendable, Hashable {
    public enum Direction: Sendable, Hashable {
        /// This type declared the relationship; it holds targets.
        case outgoing
        /// This type is a target; the end holds sources.
        case incoming
    }

    /// The property name on this type.
    public var name: String
    public var relationship: Relationship
    public var direction: Direction

    public init(name: String, relationship: Relationship, direction: Direction) {
        self.name = name
        self.relationship = relationship
        self.direction = direction
    }

    /// The types found at the other end.
    public var otherTypes: [String] {
        direction == .outgoing ? relationship.targetTypes : [relationship.sourceType]
    }

    /// How many objects this end holds.
    public var cardinality: Cardinality {
        direction == .outgoing ? relationship.cardinality : relationship.inverseCardinality
    }

    /// How many objects the other end holds.
    public var otherCardinality: Cardinality {
        direction == .outgoing ? relationship.inverseCardinality : relationship.cardinality
    }
}
