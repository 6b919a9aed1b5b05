import HeraldSchema
import HeraldStorage

extension DataModel {
    /// The REST form of an object: `id`, `type`, its properties, its relationships and the
    /// system properties, with linked objects as `nesting` says. Passwords never appear.
    /// With a `scope`, linked objects the caller may not read are left out. With a `view`,
    /// only `id`, `type` and the view's properties appear, in the view's order.
    public func render(
        _ entity: StoredEntity,
        nesting: Nesting = .default,
        view: [String]? = nil,
        as scope: AccessScope? = nil,
        in tx: any StorageTransaction
    ) throws -> JSONValue {
        var renderer = Renderer(model: self, nesting: nesting, scope: scope, tx: tx)
        guard let full = try renderer.object(entity, level: 0, shown: view.map(Set.init)) else { return .null }
        guard let view else { return .object(full) }
        var out: JSONObject = ["id": .string(entity.id), "type": .string(entity.type)]
        for name in view { out[name] = full[name] ?? .null }
        return .object(out)
    }
}

/// One rendering: the objects on the path from the root, so a link back is cut short.
private struct Renderer {
    let model: DataModel
    let nesting: Nesting
    let scope: AccessScope?
    let tx: any StorageTransaction
    var path: Set<String> = []

    init(model: DataModel, nesting: Nesting, scope: AccessScope?, tx: any StorageTransaction) {
        self.model = model
        self.nesting = nesting
        self.scope = scope
        self.tx = tx
    }

    /// Every readable property of `entity` at `level`, or those in `shown`.
    mutating func object(_ entity: StoredEntity, level: Int, shown: Set<String>?) throws -> JSONObject? {
        guard let type = model.schema.types[entity.type] else { return nil }
        path.insert(entity.id)
        defer { path.remove(entity.id) }
        var out: JSONObject = ["id": .string(entity.id), "type": .string(entity.type)]
        for (name, property) in type.properties where !property.writeOnly {
            out[name] = entity.values[name] ?? .null
        }
        for (name, end) in type.relationships where shown?.contains(name) ?? true {
            let related = try readable(try tx.related(end, of: entity.id))
            if end.cardinality == .one {
                out[name] = try related.first.map { try linked($0, level: level + 1) } ?? .null
            } else if nesting.idsOnly || level + 1 <= nesting.depth {
                out[name] = .array(try related.map { try linked($0, level: level + 1) })
            } else {
                out[name] = .array([])
            }
        }
        out[SystemProperty.createdDate] = entity.values[SystemProperty.createdDate] ?? .null
        out[SystemProperty.lastModifiedDate] = entity.values[SystemProperty.lastModifiedDate] ?? .null
        if shown?.contains(SystemProperty.owner) == false {
            // Not shown: not looked up.
        } else if case .string(let ownerID)? = entity.values[SystemProperty.owner],
            let owner = try readable([EntityReference(type: BuiltInType.user, id: ownerID)]).first
        {
            out[SystemProperty.owner] = try linked(owner, level: level + 1, compact: true)
        } else {
            out[SystemProperty.owner] = .null
        }
        out[SystemProperty.visibleToPublicUsers] = entity.values[SystemProperty.visibleToPublicUsers] ?? .bool(false)
        out[SystemProperty.visibleToAuthenticatedUsers] =
            entity.values[SystemProperty.visibleToAuthenticatedUsers] ?? .bool(false)
        return out
    }

    /// The linked objects that exist and the caller may read.
    func readable(_ references: [EntityReference]) throws -> [StoredEntity] {
        try references.compactMap { reference in
            guard let entity = try tx.fetch(type: reference.type, id: reference.id) else { return nil }
            if let scope, try !model.canRead(entity, scope, in: tx) { return nil }
            return entity
        }
    }

    /// A linked object at `level`: its id, `{}` below the depth, `{id, type, name}` when
    /// compact or already on the path, otherwise in full.
    mutating func linked(_ entity: StoredEntity, level: Int, compact: Bool = false) throws -> JSONValue {
        if nesting.idsOnly { return .string(entity.id) }
        if level > nesting.depth { return .object([:]) }
        if compact || nesting.compact || path.contains(entity.id) {
            return [
                "id": .string(entity.id),
                "type": .string(entity.type),
                "name": entity.values["name"] ?? .null,
            ]
        }
        return try object(entity, level: level, shown: nil).map(JSONValue.object) ?? .null
    }
}
