import CJavaScriptCore
import Foundation
import HeraldSchema
import HeraldStorage
import Logging

extension Engine {
    /// Builds `$` (also `Structr`) from host functions and a small prelude.
    func installAPI() {
        let host = JSObjectMake(context, nil, nil)!
        let functions: [(String, HostFunction.Body)] = [
            (
                "this",
                { engine, _, _ in
                    let session = try engine.currentSession()
                    return session.this.map { engine.entityObject($0) } ?? engine.null
                }
            ),
            ("me", { engine, _, _ in try engine.me() }),
            (
                "now",
                { engine, _, _ in
                    var argument: [JSValueRef?] = [
                        JSValueMakeNumber(engine.context, Date().timeIntervalSince1970 * 1000)
                    ]
                    return JSObjectMakeDate(engine.context, 1, &argument, nil) ?? engine.null
                }
            ),
            ("arguments", { engine, _, _ in engine.jsValue(try engine.currentSession().arguments) }),
            (
                "request",
                { engine, _, _ in
                    let request = try engine.currentSession().request
                    return engine.jsValue(
                        .object(
                            JSONObject(
                                uniqueKeysWithValues: request.sorted { $0.key < $1.key }.map {
                                    ($0.key, .string($0.value))
                                }
                            )
                        )
                    )
                }
            ),
            ("modifications", { engine, _, _ in engine.jsValue(try engine.currentSession().modifications ?? .null) }),
            ("data", { engine, _, _ in engine.jsValue(try engine.currentSession().data ?? .null) }),
            ("find", { engine, _, args in try engine.find(args) }),
            (
                "first",
                { engine, _, args in
                    guard let list = args.first else { return engine.null }
                    if JSValueIsArray(engine.context, list) { return engine.elements(list).first ?? engine.null }
                    return list
                }
            ),
            (
                "size",
                { engine, _, args in
                    guard let list = args.first, !JSValueIsNull(engine.context, list),
                        !JSValueIsUndefined(engine.context, list)
                    else { return JSValueMakeNumber(engine.context, 0) }
                    return JSValueMakeNumber(engine.context, Double(engine.elements(list).count))
                }
            ),
            (
                "create",
                { engine, _, args in
                    let (type, input) = try engine.typeAndMap(args, function: "create")
                    let entity = try engine.currentSession().create(type, input, engine: engine)
                    return engine.entityObject(EntityReference(type: type, id: entity.id))
                }
            ),
            (
                "getOrCreate",
                { engine, _, args in
                    let (type, input) = try engine.typeAndMap(args, function: "getOrCreate")
                    let found = try engine.query(type, input, limit: 1)
                    if let existing = found.first { return engine.entityObject(existing) }
                    let entity = try engine.currentSession().create(type, input, engine: engine)
                    return engine.entityObject(EntityReference(type: type, id: entity.id))
                }
            ),
            (
                "delete",
                { engine, _, args in
                    let session = try engine.currentSession()
                    for value in args.flatMap({ engine.elements($0) }) {
                        guard let object = JSValueToObject(engine.context, value, nil),
                            let reference = EntityObject.reference(engine.context, object)
                        else { throw JSThrow(message: "delete expects entities", kind: "TypeError") }
                        try session.delete(reference, engine: engine)
                    }
                    return engine.undefined
                }
            ),
            (
                "set",
                { engine, _, args in
                    guard args.count >= 2, let object = JSValueToObject(engine.context, args[0], nil),
                        let reference = EntityObject.reference(engine.context, object),
                        case .object(let input) = try engine.jsonValue(args[1])
                    else { throw JSThrow(message: "set expects an entity and an object", kind: "TypeError") }
                    try engine.currentSession().update(reference, input, engine: engine)
                    return args[0]
                }
            ),
            (
                "get",
                { engine, _, args in
                    guard args.count >= 2, let object = JSValueToObject(engine.context, args[0], nil) else {
                        throw JSThrow(message: "get expects an object and a key", kind: "TypeError")
                    }
                    return engine.property(object, engine.swiftString(args[1])) ?? engine.null
                }
            ),
            (
                "log",
                { engine, _, args in
                    let text = args.map { value -> String in
                        if JSValueIsString(engine.context, value) { return engine.swiftString(value) }
                        return (try? engine.resultJSON(value).jsonString) ?? engine.swiftString(value)
                    }.joined(separator: " ")
                    engine.session?.runtime.logger.info("\(text)", metadata: ["source": "script"])
                    return engine.undefined
                }
            ),
            (
                "error",
                { engine, _, args in
                    let session = try engine.currentSession()
                    let strings = args.map { engine.swiftString($0) }
                    session.errors.append(
                        FieldError(
                            token: strings.count > 1 ? strings[1] : "error",
                            type: session.this?.type ?? "",
                            property: strings.first ?? "",
                            detail: strings.count > 2 ? strings[2] : nil
                        )
                    )
                    return engine.undefined
                }
            ),
            (
                "assert",
                { engine, _, args in
                    guard let condition = args.first, !JSValueToBoolean(engine.context, condition) else {
                        return engine.undefined
                    }
                    let status =
                        args.count > 1 && JSValueIsNumber(engine.context, args[1])
                        ? Int(JSValueToNumber(engine.context, args[1], nil)) : 422
                    let message = args.count > 2 ? engine.swiftString(args[2]) : "Assertion failed"
                    throw JSThrow(message: message, status: (400...599).contains(status) ? status : 422)
                }
            ),
            (
                "doPrivileged",
                { engine, _, args in
                    let session = try engine.currentSession()
                    guard let function = args.first.flatMap({ JSValueToObject(engine.context, $0, nil) }),
                        JSObjectIsFunction(engine.context, function)
                    else { throw JSThrow(message: "doPrivileged expects a function", kind: "TypeError") }
                    let caller = session.caller
                    session.caller = .superuser
                    defer { session.caller = caller }
                    var exception: JSValueRef?
                    let result = JSObjectCallAsFunction(engine.context, function, nil, 0, nil, &exception)
                    if let exception {
                        throw JSThrow(
                            message: engine.swiftString(
                                engine.property(JSValueToObject(engine.context, exception, nil)!, "message")
                            )
                        )
                    }
                    return result ?? engine.undefined
                }
            ),
            (
                "store",
                { engine, _, args in
                    let session = try engine.currentSession()
                    guard let key = args.first.map({ engine.swiftString($0) }) else { return engine.undefined }
                    let value = args.count > 1 ? args[1] : engine.undefined
                    if let old = session.store[key] { JSValueUnprotect(engine.context, old) }
                    JSValueProtect(engine.context, value)
                    session.store[key] = value
                    return engine.undefined
                }
            ),
            (
                "retrieve",
                { engine, _, args in
                    let session = try engine.currentSession()
                    guard let key = args.first.map({ engine.swiftString($0) }) else { return engine.undefined }
                    if let value = session.store[key] { return value }
                    if key == "modifications", let modifications = session.modifications {
                        return engine.jsValue(modifications)
                    }
                    return engine.undefined
                }
            ),
        ]
        for (name, body) in functions { setProperty(host, name, makeFunction(name, body)) }
        let prelude = """
            (function (host) {
                'use strict';
                const api = {};
                for (const name of ['this', 'me', 'now', 'arguments', 'request', 'modifications', 'data']) {
                    Object.defineProperty(api, name, { get: host[name], enumerable: true });
                }
                for (const name of ['find', 'first', 'size', 'create', 'getOrCreate', 'delete', 'set', 'get', 'log',
                                    'error', 'assert', 'doPrivileged', 'store', 'retrieve']) {
                    api[name] = host[name];
                    const snake = name.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
                    if (snake !== name) api[snake] = host[name];
                }
                Object.freeze(api);
                Object.defineProperty(globalThis, '$', { value: api });
                Object.defineProperty(globalThis, 'Structr', { value: api });
            })
            """
        let install = try! evaluate(prelude, file: "<herald-prelude>")
        _ = try! call(JSValueToObject(context, install, nil)!, [host], location: nil)
    }

    /// `$.me`: the calling user, a stand-in object for the superuser, or null.
    func me() throws -> JSValueRef {
        switch try currentSession().caller {
        case .anonymous: return null
        case .user(let id, _, _): return entityObject(EntityReference(type: BuiltInType.user, id: id))
        case .superuser:
            return jsValue([
                "id": "00000000000000000000000000000000", "type": "User", "name": "superuser", "isAdmin": true,
            ])
        }
    }

    func typeAndMap(_ args: [JSValueRef], function: String) throws -> (String, JSONObject) {
        guard let first = args.first, JSValueIsString(context, first) else {
            throw JSThrow(message: "\(function) expects a type name", kind: "TypeError")
        }
        let type = swiftString(first)
        guard (try? currentSession().model.type(type)) != nil else {
            throw JSThrow(message: "\(function): unknown type '\(type)'", kind: "TypeError")
        }
        let input = args.count > 1 ? try jsonValue(args[1]) : .object([:])
        guard case .object(let object) = input else {
            throw JSThrow(message: "\(function) expects an object of properties", kind: "TypeError")
        }
        return (type, object)
    }

    /// `$.find(type)`, `$.find(type, id)`, `$.find(type, key, value)`, `$.find(type, {k: v})`.
    func find(_ args: [JSValueRef]) throws -> JSValueRef {
        guard let first = args.first, JSValueIsString(context, first) else {
            throw JSThrow(message: "find expects a type name", kind: "TypeError")
        }
        let typeName = swiftString(first)
        let session = try currentSession()
        guard session.runtime.schema.types[typeName] != nil else {
            throw JSThrow(message: "find: unknown type '\(typeName)'", kind: "TypeError")
        }
        var criteria = JSONObject()
        if args.count == 2, JSValueIsString(context, args[1]) {
            let id = swiftString(args[1])
            guard EntityID.isValid(id), try session.tx.fetch(type: typeName, id: id) != nil else { return null }
            return entityObject(EntityReference(type: typeName, id: id))
        } else if args.count == 2 {
            guard case .object(let map) = try jsonValue(args[1]) else {
                throw JSThrow(message: "find expects an id, a key and a value, or an object", kind: "TypeError")
            }
            criteria = map
        } else if args.count >= 3 {
            criteria[swiftString(args[1])] = try jsonValue(args[2])
        }
        return jsArray(try query(typeName, criteria, limit: nil).map { entityObject($0) })
    }

    /// Objects whose values equal every entry of `criteria` (relationship keys match by id).
    func query(_ typeName: String, _ criteria: JSONObject, limit: Int?) throws -> [EntityReference] {
        let session = try currentSession()
        let type = try session.model.type(typeName)
        var filters: [Filter] = []
        for (key, value) in criteria {
            if let end = type.relationships[key] {
                let ids = (value.arrayValue ?? [value]).compactMap(\.stringValue)
                filters.append(.related(end.name, ids))
            } else if key == SystemProperty.id || key == SystemProperty.owner {
                filters.append(.compare(key, .equal, value))
            } else if let property = type.property(named: key), !property.writeOnly {
                do {
                    filters.append(.compare(key, .equal, try property.coerce(value)))
                } catch {
                    throw JSThrow(message: "find: \(typeName).\(key): \(error.detail)", kind: "TypeError")
                }
            } else {
                throw JSThrow(message: "find: \(typeName) has no property '\(key)'", kind: "TypeError")
            }
        }
        let query = EntityQuery(
            type: typeName,
            filter: filters.isEmpty ? nil : .and(filters),
            sort: [SortKey(SystemProperty.createdDate)],
            limit: limit
        )
        return try session.tx.fetch(query).map { EntityReference(type: typeName, id: $0.id) }
    }
}
