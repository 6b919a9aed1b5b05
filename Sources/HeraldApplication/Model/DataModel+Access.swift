import HeraldSchema
import HeraldStorage

extension DataModel {
    /// Whether `scope` may read `entity`.
    public func canRead(_ entity: StoredEntity, _ scope: AccessScope, in tx: any StorageTransaction) throws -> Bool {
        if scope.bypass { return true }
        guard let user = scope.caller.userID else {
            return entity.values[SystemProperty.visibleToPublicUsers]?.boolValue == true
        }
        if entity.values[SystemProperty.visibleToAuthenticatedUsers]?.boolValue == true { return true }
        // Users own their objects and always see their own user.
        if entity.values[SystemProperty.owner]?.stringValue == user || entity.id == user { return true }
        return try tx.permissions(on: entity.id, for: scope.principals).contains(.read)
    }

    /// Whether `scope` holds `permission` on `entity`: admins always, owners always, others by grant.
    public func has(
        _ permission: Permission,
        on entity: StoredEntity,
        _ scope: AccessScope,
        in tx: any StorageTransaction
    )
        throws -> Bool
    {
        if scope.bypass { return true }
        guard let user = scope.caller.userID else { return false }
        if entity.values[SystemProperty.owner]?.stringValue == user { return true }
        // A user may change its own user (its password, say), though never its `isAdmin`.
        if entity.id == user, permission == .read || permission == .write { return true }
        return try tx.permissions(on: entity.id, for: scope.principals).contains(permission)
    }

    /// The object if `scope` may read it; an invisible object is "not found", like a missing one.
    public func get(_ typeName: String, id: String, as scope: AccessScope?, in tx: any StorageTransaction) throws
        -> StoredEntity
    {
        let entity = try get(typeName, id: id, in: tx)
        if let scope, try !canRead(entity, scope, in: tx) { throw DataError.notFound(type: typeName, id: id) }
        return entity
    }

    /// Throws 403 unless `scope` holds `permission` on `entity`. Resource access grants change
    /// only by admins, whoever owns them.
    public func require(
        _ permission: Permission,
        on entity: StoredEntity,
        _ scope: AccessScope?,
        in tx: any StorageTransaction
    )
        throws
    {
        guard let scope, !scope.bypass else { return }
        if entity.type == BuiltInType.resourceAccess, permission != .read {
            throw DataError.forbidden("Only admins may change resource access grants")
        }
        guard try !has(permission, on: entity, scope, in: tx) else { return }
        throw DataError.forbidden("No \(permission.rawValue) permission on \(entity.type) \(entity.id)")
    }

    /// Refuses writes that would raise the caller's own rights: `isAdmin`, grants, owners.
    func checkEscalation(
        _ type: TypeDefinition,
        _ input: JSONObject,
        existing: StoredEntity?,
        _ scope: AccessScope?,
        in tx: any StorageTransaction
    ) throws {
        guard let scope, !scope.bypass else { return }
        // Changing an existing grant is refused by `require(.write)`; creating one here.
        if existing == nil, type.name == BuiltInType.resourceAccess {
            throw DataError.forbidden("Only admins may change resource access grants")
        }
        if type.name == BuiltInType.user, input["isAdmin"] != nil {
            throw DataError.forbidden("Only admins may change isAdmin")
        }
        if let owner = input[SystemProperty.owner] {
            if let existing {
                try require(.accessControl, on: existing, scope, in: tx)
            } else if owner.stringValue != scope.caller.userID, owner["id"]?.stringValue != scope.caller.userID {
                throw DataError.forbidden("A new object belongs to its creator")
            }
        }
    }
}
