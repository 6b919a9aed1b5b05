import CJavaScriptCore
import Foundation
import HeraldApplication
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
            guard let type = engine.job?.model.schema.types[entity.reference.type] else { return }
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

    func currentJob() throws(JSThrow) -> ScriptJob {
        guard let job else { throw JSThrow(message: "no transaction is open") }
        return job
    }

    func readEntityProperty(_ reference: EntityReference, _ name: String) throws -> JSValueRef? {
        let job = try currentJob()
        switch name {
        case "id": return string(reference.id)
        case "type": return string(reference.type)
        case "toJSON":
            return makeFunction("toJSON") { engine, _, _ in
                let job = try engine.currentJob()
                guard let entity = try job.tx.fetch(type: reference.type, id: reference.id),
                    try job.model.canRead(entity, try job.scope, in: job.tx)
                else {
                    return engine.null
                }
                return engine.jsValue(try job.model.render(entity, as: try job.scope, in: job.tx))
            }
        default: break
        }
        guard let type = job.model.schema.types[reference.type] else { return nil }
        if type.property(named: name) == nil, type.relationships[name] == nil,
            let method = type.methods.first(where: { $0.name == name && $0.lifecycleEvent == nil })
        {
            return entityMethod(method, of: reference)
        }
        let isRelationship = type.relationships[name] != nil
        guard isRelationship || name == SystemProperty.owner || type.property(named: name) != nil else { return nil }
        // Every read respects visibility: an object the caller cannot see reads as missing,
        // whoever handed the script its reference (`$.this` of a method included).
        let scope = try job.scope
        guard let entity = try job.tx.fetch(type: reference.type, id: reference.id) else {
            throw JSThrow(message: "\(reference.type) \(reference.id) no longer exists")
        }
        guard try job.model.canRead(entity, scope, in: job.tx) else {
            throw DataError.notFound(type: reference.type, id: reference.id)
        }
        if let end = type.relationships[name] {
            var related: [JSObjectRef] = []
            for other in try job.tx.related(end, of: reference.id) {
                guard let entity = try job.tx.fetch(type: other.type, id: other.id),
                    try job.model.canRead(entity, scope, in: job.tx)
                else { continue }
                related.append(entityObject(other))
            }
            if end.cardinality == .one { return related.first ?? null }
            return jsArray(related)
        }
        if name == SystemProperty.owner {
            guard case .string(let owner)? = entity.values[SystemProperty.owner],
                let user = try job.tx.fetch(type: BuiltInType.user, id: owner),
                try job.model.canRead(user, scope, in: job.tx)
            else { return null }
            return entityObject(EntityReference(type: BuiltInType.user, id: owner))
        }
        guard let property = type.property(named: name) else { return nil }
        if property.writeOnly { return undefined }
        return jsValue(entity.values[name] ?? .null, type: property.type)
    }

    /// `entity.method(arguments)`: the type's method with `this` bound, run in the same unit of
    /// work, as in Structr. The argument is the method's `$.arguments`; the answer is what it
    /// returns. An object the caller cannot see has no methods to call.
    func entityMethod(_ method: MethodDefinition, of reference: EntityReference) -> JSObjectRef {
        makeFunction(method.name) { engine, _, args in
            let job = try engine.currentJob()
            guard let entity = try job.tx.fetch(type: reference.type, id: reference.id),
                try job.model.canRead(entity, try job.scope, in: job.tx)
            else { throw DataError.notFound(type: reference.type, id: reference.id) }
            let arguments = try args.first.map { try engine.jsonValue($0) } ?? .object([:])
            let saved = job.arguments
            job.arguments = arguments
            defer { job.arguments = saved }
            return try engine.invokeValue(method, job: job, this: reference)
        }
    }

    func writeEntityProperty(_ reference: EntityReference, _ name: String, _ value: JSValueRef?) throws {
        let job = try currentJob()
        let json = try jsonValue(value)
        try job.work.update(reference, [name: json])
    }
}
