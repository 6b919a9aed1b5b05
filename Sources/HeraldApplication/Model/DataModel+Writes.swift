import HeraldSchema
import HeraldStorage

extension DataModel {
    /// Input keys that name the object rather than set a value.
    static let identityKeys: Set<String> = [SystemProperty.id, SystemProperty.type]

    /// Creates one object from `input` and returns it. `owner` is the creating user's id.
    /// `allowID` lets the input choose the id (initial data).
    @discardableResult
    public func create(
        _ typeName: String,
        _ input: JSONObject,
        owner: String?,
        allowID: Bool = false,
        as scope: AccessScope? = nil,
        in tx: any StorageTransaction
    ) throws -> StoredEntity {
        let type = try type(typeName)
        try checkEscalation(type, input, existing: nil, scope, in: tx)
        var errors: [FieldError] = []
        var id = EntityID.generate()
        if let given = input[SystemProperty.id] {
            if allowID, let s = given.stringValue, EntityID.isValid(s) {
                if try tx.fetch(type: typeName, id: s) != nil {
                    errors.append(FieldError(token: "already_taken", type: typeName, property: "id", detail: s))
                }
                id = s
            } else {
                errors.append(FieldError(token: "read_only_property", type: typeName, property: "id"))
            }
        }
        var (values, links) = try prepare(type, input, existingID: nil, scope: scope, into: &errors, in: tx)
        let timestamp = JSONValue.string(now().iso8601)
        values[SystemProperty.createdDate] = timestamp
        values[SystemProperty.lastModifiedDate] = timestamp
        if values[SystemProperty.owner] == nil, let owner { values[SystemProperty.owner] = .string(owner) }
        for (name, property) in type.properties where values[name] == nil {
            if let defaultValue = property.defaultValue { values[name] = defaultValue }
        }
        for (name, definition) in SystemProperty.definitions where values[name] == nil {
            if let defaultValue = definition.defaultValue { values[name] = defaultValue }
        }
        for (name, property) in type.properties where property.required && PropertyDefinition.isEmpty(values[name]) {
            if errors.contains(where: { $0.property == name }) { continue }
            errors.append(FieldError(token: "must_not_be_empty", type: typeName, property: name))
        }
        Self.requireUserIdentity(typeName, values, into: &errors)
        try checkUnique(type, values, excluding: nil, into: &errors, in: tx)
        guard errors.isEmpty else { throw DataError.validation(errors) }
        let entity = StoredEntity(type: typeName, id: id, values: values)
        try tx.insert(entity)
        for (end, references) in links {
            try setLinks(end, of: EntityReference(type: typeName, id: id), to: references, as: scope, in: tx)
        }
        return entity
    }

    /// Sets the keys in `input` on an existing object (a partial update) and returns it.
    @discardableResult
    public func update(
        _ typeName: String,
        id: String,
        _ input: JSONObject,
        as scope: AccessScope? = nil,
        in tx: any StorageTransaction
    ) throws -> StoredEntity {
        let type = try type(typeName)
        var entity = try get(typeName, id: id, as: scope, in: tx)
        try require(.write, on: entity, scope, in: tx)
        try checkEscalation(type, input, existing: entity, scope, in: tx)
        var errors: [FieldError] = []
        if let given = input[SystemProperty.id], given != .string(id) {
            errors.append(FieldError(token: "read_only_property", type: typeName, property: "id"))
        }
        var (values, links) = try prepare(type, input, existingID: id, scope: scope, into: &errors, in: tx)
        for (name, property) in type.properties where property.required && values.keys.contains(name) {
            if PropertyDefinition.isEmpty(values[name]) {
                errors.append(FieldError(token: "must_not_be_empty", type: typeName, property: name))
            }
        }
        if values.keys.contains("name") || values.keys.contains("eMail") {
            Self.requireUserIdentity(typeName, entity.values.merging(values) { _, new in new }, into: &errors)
        }
        try checkUnique(type, values, excluding: id, into: &errors, in: tx)
        guard errors.isEmpty else { throw DataError.validation(errors) }
        values[SystemProperty.lastModifiedDate] = .string(now().iso8601)
        try tx.update(type: typeName, id: id, values: values)
        for (end, references) in links {
            try setLinks(end, of: EntityReference(type: typeName, id: id), to: references, as: scope, in: tx)
        }
        entity.values.merge(values) { _, new in new }
        return entity
    }

    /// A `User` is known by a name or an e-mail address: one of them must stay set, as in Structr.
    static func requireUserIdentity(_ typeName: String, _ values: [String: JSONValue], into errors: inout [FieldError])
    {
        guard typeName == BuiltInType.user, PropertyDefinition.isEmpty(values["name"]),
            PropertyDefinition.isEmpty(values["eMail"]), !errors.contains(where: { $0.property == "name" })
        else { return }
        errors.append(
            FieldError(
                token: "must_not_be_empty",
                type: typeName,
                property: "name",
                detail: "a User needs a name or an eMail"
            )
        )
    }

    /// Deletes an object and its links; returns what it held.
    @discardableResult
    public func delete(_ typeName: String, id: String, as scope: AccessScope? = nil, in tx: any StorageTransaction)
        throws
        -> StoredEntity
    {
        let entity = try get(typeName, id: id, as: scope, in: tx)
        try require(.delete, on: entity, scope, in: tx)
        try tx.delete(type: typeName, id: id)
        return entity
    }

    /// Checks and converts the input values; relationship values come back separately.
    func prepare(
        _ type: TypeDefinition,
        _ input: JSONObject,
        existingID: String?,
        scope: AccessScope? = nil,
        into errors: inout [FieldError],
        in tx: any StorageTransaction
    ) throws -> ([String: JSONValue], [(RelationshipEnd, [EntityReference])]) {
        var values: [String: JSONValue] = [:]
        var links: [(RelationshipEnd, [EntityReference])] = []
        for (key, value) in input {
            if key == SystemProperty.id { continue }
            if key == SystemProperty.type {
                if value != .string(type.name) {
                    errors.append(
                        FieldError(
                            token: "read_only_property",
                            type: type.name,
                            property: key,
                            detail: "the type is \(type.name)"
                        )
                    )
                }
                continue
            }
            if key == SystemProperty.owner {
                switch try resolveReferences(
                    value,
                    allowedTypes: [BuiltInType.user],
                    single: true,
                    type.name,
                    key,
                    &errors,
                    tx
                ) {
                case .some(let refs): values[key] = refs.first.map { .string($0.id) } ?? .null
                case .none: break
                }
                continue
            }
            if let end = type.relationships[key] {
                let single = end.cardinality == .one
                if let refs = try resolveReferences(
                    value,
                    allowedTypes: end.otherTypes,
                    single: single,
                    type.name,
                    key,
                    &errors,
                    tx,
                    scope: scope
                ) {
                    links.append((end, refs))
                }
                continue
            }
            guard let property = type.property(named: key) else {
                errors.append(FieldError(token: "unknown_property", type: type.name, property: key))
                continue
            }
            if property.readOnly {
                errors.append(FieldError(token: "read_only_property", type: type.name, property: key))
                continue
            }
            do {
                var canonical = try property.coerce(value)
                // The visibility flags are never null: null sets them back to their default.
                if canonical.isNull, SystemProperty.definitions[key] != nil, let defaultValue = property.defaultValue {
                    canonical = defaultValue
                }
                if case .password = property.type, case .string(let plain) = canonical {
                    canonical = plain.isEmpty ? .null : .string(hasher.hash(plain))
                }
                values[key] = canonical
            } catch {
                errors.append(FieldError(token: error.token, type: type.name, property: key, detail: error.detail))
            }
        }
        return (values, links)
    }

    /// Reads relationship input: an id, an object with `id`, a list of those, or null.
    /// Returns `nil` (with an error recorded) when the value cannot be used.
    func resolveReferences(
        _ value: JSONValue,
        allowedTypes: [String],
        single: Bool,
        _ typeName: String,
        _ property: String,
        _ errors: inout [FieldError],
        _ tx: any StorageTransaction,
        scope: AccessScope? = nil
    ) throws -> [EntityReference]? {
        var items: [JSONValue]
        switch value {
        case .null: items = []
        case .array(let list):
            if single {
                errors.append(
                    FieldError(
                        token: "must_be_single",
                        type: typeName,
                        property: property,
                        detail: "holds one object, got a list"
                    )
                )
                return nil
            }
            items = list
        default: items = [value]
        }
        var references: [EntityReference] = []
        for item in items {
            let id: String?
            switch item {
            case .string(let s): id = s
            case .object(let o):
                // Only `id` (and a matching `type`) identify the object; other keys would be
                // silently dropped, so they are refused rather than ignored.
                let extra = o.keys.filter { $0 != SystemProperty.id && $0 != SystemProperty.type }
                guard extra.isEmpty else {
                    errors.append(
                        FieldError(
                            token: "unsupported_nested_write",
                            type: typeName,
                            property: property,
                            detail:
                                "a reference holds only id (and type); \(extra.sorted().joined(separator: ", ")) would be ignored: write them to the object itself"
                        )
                    )
                    return nil
                }
                id = o["id"]?.stringValue
            default: id = nil
            }
            guard let id, EntityID.isValid(id) else {
                errors.append(
                    FieldError(
                        token: "must_be_reference",
                        type: typeName,
                        property: property,
                        detail: "expected an id or an object with an id, got \(item.kindName)"
                    )
                )
                return nil
            }
            var found: EntityReference?
            for candidate in allowedTypes {
                guard let target = try tx.fetch(type: candidate, id: id) else { continue }
                // An object the caller cannot see is not found, as if it did not exist.
                if let scope, try !canRead(target, scope, in: tx) { break }
                found = EntityReference(type: candidate, id: id)
                break
            }
            guard let found else {
                errors.append(
                    FieldError(
                        token: "not_found",
                        type: typeName,
                        property: property,
                        detail: "no \(allowedTypes.joined(separator: " or ")) with id \(id)"
                    )
                )
                return nil
            }
            if !references.contains(found) { references.append(found) }
        }
        return references
    }

    func checkUnique(
        _ type: TypeDefinition,
        _ values: [String: JSONValue],
        excluding id: String?,
        into errors: inout [FieldError],
        in tx: any StorageTransaction
    ) throws {
        for (name, property) in type.properties where property.unique {
            guard let value = values[name], !value.isNull else { continue }
            if try tx.exists(type: type.name, property: name, value: value, excluding: id) {
                errors.append(FieldError(token: "already_taken", type: type.name, property: name, detail: "\(value)"))
            }
        }
    }

    /// Replaces what `end` of `entity` holds with `references`, keeping the other end's
    /// cardinality: a target that may have one source is moved, not doubled.
    ///
    /// A link changes both of its objects, so every object that gains or loses a link must allow
    /// it (see `requireLinkRights`); `entity` itself was checked by the write that got here.
    public func setLinks(
        _ end: RelationshipEnd,
        of entity: EntityReference,
        to references: [EntityReference],
        as scope: AccessScope? = nil,
        in tx: any StorageTransaction
    ) throws {
        let relationship = end.relationship
        if let scope, !scope.bypass {
            try requireLinkRights(end, of: entity, to: references, scope, in: tx)
        }
        switch end.direction {
        case .outgoing:
            try tx.unlink(relationship, source: entity.id, target: nil)
            for target in references {
                if relationship.inverseCardinality == .one {
                    try tx.unlink(relationship, source: nil, target: target.id)
                }
                try tx.link(relationship, source: entity.id, target: target)
            }
        case .incoming:
            try tx.unlink(relationship, source: nil, target: entity.id)
            for source in references {
                if relationship.cardinality == .one { try tx.unlink(relationship, source: source.id, target: nil) }
                try tx.link(relationship, source: source.id, target: entity)
            }
        }
    }

    /// The one rule for relationship writes: every other object that gains or loses a link
    /// through this write needs write rights, except a relationship's targets when the schema
    /// opens them (`targetLinkRight: read`), which need only be visible. That covers the objects
    /// linked and unlinked, and those a one-sided end moves an object away from. Group
    /// membership is a built-in relationship with write on both sides, so only a caller who may
    /// write the group changes its members.
    func requireLinkRights(
        _ end: RelationshipEnd,
        of entity: EntityReference,
        to references: [EntityReference],
        _ scope: AccessScope,
        in tx: any StorageTransaction
    ) throws {
        let relationship = end.relationship
        let current = try tx.related(end, of: entity.id)
        let otherSideIsTarget = end.direction == .outgoing
        func right(targetSide: Bool) -> Permission {
            targetSide && relationship.targetLinkRight == .read ? .read : .write
        }
        let removed = current.filter { !references.contains($0) }
        let added = references.filter { !current.contains($0) }
        var checks = (removed + added).map { ($0, right(targetSide: otherSideIsTarget)) }
        // An added object that holds one of `entity`'s kind leaves its previous partner.
        if end.otherCardinality == .one {
            let reverse = RelationshipEnd(
                name: relationship.inverseName ?? relationship.name,
                relationship: relationship,
                direction: end.direction == .outgoing ? .incoming : .outgoing
            )
            for other in added {
                for previous in try tx.related(reverse, of: other.id) where previous != entity {
                    checks.append((previous, right(targetSide: !otherSideIsTarget)))
                }
            }
        }
        for (reference, permission) in checks {
            guard let object = try tx.fetch(type: reference.type, id: reference.id) else { continue }
            let allowed =
                permission == .read
                ? try canRead(object, scope, in: tx) : try has(permission, on: object, scope, in: tx)
            if !allowed {
                throw DataError.forbidden(
                    "Changing \(relationship.key) needs \(permission.rawValue) permission on \(reference.type) \(reference.id),"
                        + " which gains or loses the link"
                )
            }
        }
    }
}
