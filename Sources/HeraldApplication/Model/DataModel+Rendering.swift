import HeraldSchema
import HeraldStorage

extension DataModel {
    /// The deepest `_outputNestingDepth` honoured.
    public static let maximumNestingDepth = 3

    /// The REST form of an object: `id`, `type`, its properties, its relationships and the
    /// system properties. Related objects appear as `{id, type, name}` at `depth` 1, in full
    /// (one level less deep) above that, and as bare ids at 0. Passwords never appear.
    /// With a `scope`, related objects the caller may not read are left out. With a `view`,
    /// only `id`, `type` and the view's properties appear, in the view's order.
    public func render(
        _ entity: StoredEntity,
        depth: Int = 1,
        view: [String]? = nil,
        as scope: AccessScope? = nil,
        in tx: any StorageTransaction
    ) throws -> JSONValue {
        guard let type = schema.types[entity.type] else { return .null }
        let full = try renderAll(entity, type, shown: view.map(Set.init), depth: depth, as: scope, in: tx)
        guard let view else { return .object(full) }
        var out: JSONObject = ["id": .string(entity.id), "type": .string(entity.type)]
        for name in view { out[name] = full[name] ?? .null }
        return .object(out)
    }

    /// Every readable property of `entity`, or those in `shown`.
    private func renderAll(
        _ entity: StoredEntity,
        _ type: TypeDefinition,
        shown: Set<String>?,
        depth: Int,
        as scope: AccessScope?,
        in tx: any StorageTransaction
    ) throws -> JSONObject {
        var out: JSONObject = ["id": .string(entity.id), "type": .string(entity.type)]
        for (name, property) in type.properties where !property.writeOnly {
            out[name] = entity.values[name] ?? .null
        }
        for (name, end) in type.relationships where shown?.contains(name) ?? true {
            let related = try tx.related(end, of: entity.id)
            let rendered = try related.compactMap { try renderReference($0, depth: depth, as: scope, in: tx) }
            out[name] = end.cardinality == .one ? (rendered.first ?? .null) : .array(rendered)
        }
        out[SystemProperty.createdDate] = entity.values[SystemProperty.createdDate] ?? .null
        out[SystemProperty.lastModifiedDate] = entity.values[SystemProperty.lastModifiedDate] ?? .null
        if shown?.contains(SystemProperty.owner) == false {
            // Not shown: not looked up.
        } else if case .string(let ownerID)? = entity.values[SystemProperty.owner] {
            out[SystemProperty.owner] =
                try renderReference(
                    EntityReference(type: BuiltInType.user, id: ownerID),
                    depth: min(depth, 1),
                    as: scope,
                    in: tx
                ) ?? .null
        } else {
            out[SystemProperty.owner] = .null
        }
        out[SystemProperty.visibleToPublicUsers] = entity.values[SystemProperty.visibleToPublicUsers] ?? .bool(false)
        out[SystemProperty.visibleToAuthenticatedUsers] =
            entity.values[SystemProperty.visibleToAuthenticatedUsers] ?? .bool(false)
        return out
    }

    /// A related object as output shows it, or nil when the caller may not read it.
    func renderReference(
        _ reference: EntityReference,
        depth: Int,
        as scope: AccessScope?,
        in tx: any StorageTransaction
    )
        throws -> JSONValue?
    {
        guard let entity = try tx.fetch(type: reference.type, id: reference.id) else { return nil }
        if let scope, try !canRead(entity, scope, in: tx) { return nil }
        if depth <= 0 { return .string(reference.id) }
        if depth == 1 {
            return [
                "id": .string(entity.id),
                "type": .string(entity.type),
                "name": entity.values["name"] ?? .null,
            ]
        }
        return try render(entity, depth: depth - 1, as: scope, in: tx)
    }
}
