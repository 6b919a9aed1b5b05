import HeraldSchema

/// A change a write transaction made to one object: what the event log records for live
/// queries. A link changes both of its objects; deleting an object changes every object it was
/// linked to.
public struct ObjectChange: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case created = "create"
        case updated = "update"
        case deleted = "delete"
    }

    /// The object's type; empty when the transaction knew only its id (a grant on it changed).
    public var type: String
    public var id: String
    public var kind: Kind
    /// The properties and relationships whose values changed (`_grants` for grants).
    public var keys: Set<String>

    public init(type: String, id: String, kind: Kind, keys: Set<String>) {
        self.type = type
        self.id = id
        self.kind = kind
        self.keys = keys
    }

    /// The key recorded when grants on an object changed.
    public static let grantsKey = "_grants"
}

/// The changes of one write transaction, object by object, in the order each was first changed.
struct ChangeJournal {
    private(set) var changes: [ObjectChange] = []
    private var index: [String: Int] = [:]

    /// Records that `keys` of the object changed; a later kind wins over `updated` (an object
    /// created and then changed stays created; a deleted one stays deleted).
    mutating func record(type: String, id: String, _ kind: ObjectChange.Kind, keys: some Sequence<String>) {
        if let at = index[id] {
            if kind != .updated { changes[at].kind = kind }
            if changes[at].type.isEmpty { changes[at].type = type }
            changes[at].keys.formUnion(keys)
        } else {
            index[id] = changes.count
            changes.append(ObjectChange(type: type, id: id, kind: kind, keys: Set(keys)))
        }
    }
}
