import CJavaScriptCore
import Foundation
import HeraldSchema
import HeraldStorage

/// Live entity objects: reading a property reads the current transaction, assigning writes
/// through it (validated), and `JSON.stringify` gives the REST form.
final class EntityObject {
    let reference: EntityReference

    init(_ reference: EntityReference) {
        self.reference = reference
    }

    /// JSClass objects are immutable once created and may be shared by every context group.
    nonisolated(unsafe) static let jsClass: JSClassRef = {
        var definition = kJSClassDefinitionEmpty
        definition.className = UnsafePointer(strdup("Entity"))
        definition.getProperty = { ctx, object, name, exception in
            let engine = Engine.of(ctx)
            let entity = Unmanaged<EntityObject>.fromOpaque(JSObjectGetPrivate(object)!).takeUnretainedValue()
            let key = Engine.swiftString(name!)
            do {
                try engine.checkDeadline()
                return try engine.readEntityProperty(entity.reference, key)
            } catch {
                exception?.pointee = engine.jsError(for: error, in: "\(entity.reference.type).\(key)")
            }
            return nil
        }
        definition.setProperty = { ctx, object, name, value, exception in
            let engine = Engine.of(ctx)
            let entity = Unmanaged<EntityObject>.fromOpaque(JSObjectGetPrivate(object)!).takeUnretainedValue()
            let key = Engine.swiftString(name!)
            do {
                try engine.checkDeadline()
                try engine.writeEntityProperty(entity.reference, key, value)
            } catch {
                exception?.pointee = engine.jsError(for: error, in: "\(entity.reference.type).\(key)")
            }
            return true
        }
        definition.getPropertyNames = { ctx, object, names in
            let engine = Engine.of(ctx)
            let entity = Unmanaged<EntityObject>.fromOpaque(JSObjectGetPrivate(object)!).takeUnretainedValue()
            guard let type = engine.session?.model.schema.types[entity.reference.type] else { return }
            var keys = ["id", "type"]
            keys += type.properties.values.filter { !$0.writeOnly }.map(\.name)
            keys += type.relationships.keys
            keys += Array(SystemProperty.definitions.keys) + [SystemProperty.owner]
            for key in keys {
                let js = JSStringCreateWithUTF8CString(key)
                JSPropertyNameAccumulatorAddName(names, js)
                JSStringRelease(js)
            }
        }
        definition.finalize = { object in
            Unmanaged<EntityObject>.fromOpaque(JSObjectGetPrivate(object)!).release()
        }
        return JSClassCreate(&definition)
    }()

    /// The entity behind `object`, if it is an entity object.
    static func reference(_ context: JSContextRef, _ object: JSObjectRef) -> EntityReference? {
        guard JSValueIsObjectOfClass(context, object, jsClass), let pointer = JSObjectGetPrivate(object) else {
            return nil
        }
        return Unmanaged<EntityObject>.fromOpaque(pointer).takeUnretainedValue().reference
    }
}

extension Engine {
    /// A live JavaScript object for a stored entity.
    func entityObject(_ reference: EntityReference) -> JSObjectRef {
        JSObjectMake(context, EntityObject.jsClass, Unmanaged.passRetained(EntityObject(reference)).toOpaque())!
    }

    func currentSession() throws(JSThrow) -> ScriptSession {
        guard let session else { throw JSThrow(message: "no transaction is open") }
        return session
    }

    func readEntityProperty(_ reference: EntityReference, _ name: String) throws -> JSValueRef? {
        let session = try currentSession()
        switch name {
        case "id": return string(reference.id)
        case "type": return string(reference.type)
        case "toJSON":
            return makeFunction("toJSON") { engine, _, _ in
                let session = try engine.currentSession()
                guard let entity = try session.tx.fetch(type: reference.type, id: reference.id),
                    try session.model.canRead(entity, try session.scope, in: session.tx)
                else {
                    return engine.null
                }
                return engine.jsValue(try session.model.render(entity, as: try session.scope, in: session.tx))
            }
        default: break
        }
        guard let type = session.model.schema.types[reference.type] else { return nil }
        let isRelationship = type.relationships[name] != nil
        guard isRelationship || name == SystemProperty.owner || type.property(named: name) != nil else { return nil }
        // Every read respects visibility: an object the caller cannot see reads as missing,
        // whoever handed the script its reference (`$.this` of a method included).
        let scope = try session.scope
        guard let entity = try session.tx.fetch(type: reference.type, id: reference.id) else {
            throw JSThrow(message: "\(reference.type) \(reference.id) no longer exists")
        }
        guard try session.model.canRead(entity, scope, in: session.tx) else {
            throw DataError.notFound(type: reference.type, id: reference.id)
        }
        if let end = type.relationships[name] {
            var related: [JSObjectRef] = []
            for other in try session.tx.related(end, of: reference.id) {
                guard let entity = try session.tx.fetch(type: other.type, id: other.id),
                    try session.model.canRead(entity, scope, in: session.tx)
                else { continue }
                related.append(entityObject(other))
            }
            if end.cardinality == .one { return related.first ?? null }
            return jsArray(related)
        }
        if name == SystemProperty.owner {
            guard case .string(let owner)? = entity.values[SystemProperty.owner],
                let user = try session.tx.fetch(type: BuiltInType.user, id: owner),
                try session.model.canRead(user, scope, in: session.tx)
            else { return null }
            return entityObject(EntityReference(type: BuiltInType.user, id: owner))
        }
        guard let property = type.property(named: name) else { return nil }
        if property.writeOnly { return undefined }
        return jsValue(entity.values[name] ?? .null, type: property.type)
    }

    func writeEntityProperty(_ reference: EntityReference, _ name: String, _ value: JSValueRef?) throws {
        let session = try currentSession()
        let json = try jsonValue(value)
        try session.update(reference, [name: json], engine: self)
    }
}
