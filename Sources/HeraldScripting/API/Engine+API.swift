import CJavaScriptCore
import Foundation
import HeraldApplication
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
                    let job = try engine.currentJob()
                    return job.this.map { engine.entityObject($0) } ?? engine.null
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
            ("arguments", { engine, _, _ in engine.jsValue(try engine.currentJob().arguments) }),
            (
                "request",
                { engine, _, _ in
                    let request = try engine.currentJob().request
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
            ("modifications", { engine, _, _ in engine.jsValue(try engine.currentJob().input.modifications ?? .null) }),
            ("data", { engine, _, _ in engine.jsValue(try engine.currentJob().input.data ?? .null) }),
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
                    let entity = try engine.currentJob().work.create(type, input)
                    return engine.entityObject(EntityReference(type: type, id: entity.id))
                }
            ),
            (
                "getOrCreate",
                { engine, _, args in
                    let (type, input) = try engine.typeAndMap(args, function: "getOrCreate")
                    let found = try engine.query(type, [.object(input)], limit: 1)
                    if let existing = found.first { return engine.entityObject(existing) }
                    let entity = try engine.currentJob().work.create(type, input)
                    return engine.entityObject(EntityReference(type: type, id: entity.id))
                }
            ),
            (
                "delete",
                { engine, _, args in
                    let job = try engine.currentJob()
                    for value in args.flatMap({ engine.elements($0) }) {
                        guard let object = JSValueToObject(engine.context, value, nil),
                            let reference = EntityObject.reference(engine.context, object)
                        else { throw JSThrow(message: "delete expects entities", kind: "TypeError") }
                        try job.work.delete(reference)
                    }
                    return engine.undefined
                }
            ),
            (
                "set",
                { engine, _, args in
                    guard args.count >= 2, let object = JSValueToObject(engine.context, args[0], nil),
                        let reference = EntityObject.reference(engine.context, object)
                    else { throw JSThrow(message: "set expects an entity and an object", kind: "TypeError") }
                    let input: JSONObject
                    if args.count >= 3, JSValueIsString(engine.context, args[1]) {
                        input = [engine.swiftString(args[1]): try engine.jsonValue(args[2])]  // set(entity, key, value)
                    } else if case .object(let map) = try engine.jsonValue(args[1]) {
                        input = map
                    } else {
                        throw JSThrow(message: "set expects an entity and an object", kind: "TypeError")
                    }
                    try engine.currentJob().work.update(reference, input)
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
                    engine.logger.info("\(text)", metadata: ["source": "script"])
                    engine.transcript?.append(text)
                    return engine.undefined
                }
            ),
            (
                "error",
                { engine, _, args in
                    let job = try engine.currentJob()
                    let strings = args.map { engine.swiftString($0) }
                    job.work.validationErrors.append(
                        FieldError(
                            token: strings.count > 1 ? strings[1] : "error",
                            type: job.this?.type ?? "",
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
                        ? Engine.int(JSValueToNumber(engine.context, args[1], nil)) : nil
                    let message = args.count > 2 ? engine.swiftString(args[2]) : "Assertion failed"
                    // An unusable status becomes 422 where every script status becomes HTTP.
                    throw JSThrow(message: message, status: status ?? 422)
                }
            ),
            (
                "doPrivileged",
                { engine, _, args in
                    let job = try engine.currentJob()
                    guard let function = args.first.flatMap({ JSValueToObject(engine.context, $0, nil) }),
                        JSObjectIsFunction(engine.context, function)
                    else { throw JSThrow(message: "doPrivileged expects a function", kind: "TypeError") }
                    let caller = job.work.caller
                    job.work.caller = .superuser
                    defer { job.work.caller = caller }
                    var exception: JSValueRef?
                    let result = JSObjectCallAsFunction(engine.context, function, nil, 0, nil, &exception)
                    // Whatever the callback threw (`null` included) goes on to the caller as is.
                    if let exception { throw JSRethrow(value: exception) }
                    return result ?? engine.undefined
                }
            ),
            (
                "store",
                { engine, _, args in
                    let job = try engine.currentJob()
                    guard let key = args.first.map({ engine.swiftString($0) }) else { return engine.undefined }
                    let value = args.count > 1 ? args[1] : engine.undefined
                    if let old = job.store[key] { JSValueUnprotect(engine.context, old) }
                    JSValueProtect(engine.context, value)
                    job.store[key] = value
                    return engine.undefined
                }
            ),
            (
                "retrieve",
                { engine, _, args in
                    let job = try engine.currentJob()
                    guard let key = args.first.map({ engine.swiftString($0) }) else { return engine.undefined }
                    if let value = job.store[key] { return value }
                    if key == "modifications", let modifications = job.input.modifications {
                        return engine.jsValue(modifications)
                    }
                    return engine.undefined
                }
            ),
        ]
        let events: [(String, HostFunction.Body)] = [
            ("broadcastEvent", { engine, _, args in try engine.broadcastEvent(args) }),
            ("sendEvent", { engine, _, args in try engine.sendEvent(args) }),
            ("publish", { engine, _, args in try engine.publish(args) }),
            ("grant", { engine, _, args in try engine.changeGrant(args, granting: true) }),
            ("revoke", { engine, _, args in try engine.changeGrant(args, granting: false) }),
        ]
        for (name, body) in functions + events { setProperty(host, name, makeFunction(name, body)) }
        let prelude = """
            (function (host) {
                'use strict';
                const api = {};
                for (const name of ['this', 'me', 'now', 'arguments', 'request', 'modifications', 'data']) {
                    Object.defineProperty(api, name, { get: host[name], enumerable: true });
                }
                for (const name of ['find', 'first', 'size', 'create', 'getOrCreate', 'delete', 'set', 'get', 'log',
                                    'error', 'assert', 'doPrivileged', 'store', 'retrieve', 'broadcastEvent', 'sendEvent', 'publish', 'grant', 'revoke']) {
                    api[name] = host[name];
                    const snake = name.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
                    if (snake !== name) api[snake] = host[name];
                }
                const K = '__heraldPredicate';
                // Inside a map ({name: $.predicate.contains('x')}) the key comes from the map.
                const keyed = (name) => (...a) => a.length === 1 ? { [K]: name, value: a[0] } : { [K]: name, key: a[0], value: a[1] };
                const predicate = {
                    equals: keyed('equals'),
                    contains: keyed('contains'),
                    startsWith: keyed('startsWith'),
                    endsWith: keyed('endsWith'),
                    lt: keyed('lt'),
                    lte: keyed('lte'),
                    gt: keyed('gt'),
                    gte: keyed('gte'),
                    range: (...a) => a.length === 2 ? { [K]: 'range', from: a[0], to: a[1] } : { [K]: 'range', key: a[0], from: a[1], to: a[2] },
                    empty: (key) => ({ [K]: 'empty', key }),
                    and: (...items) => ({ [K]: 'and', items }),
                    or: (...items) => ({ [K]: 'or', items }),
                    not: (item) => ({ [K]: 'not', items: [item] }),
                    sort: (key, descending) => ({ [K]: 'sort', key, descending: !!descending }),
                    page: (page, size) => ({ [K]: 'page', page, size }),
                };
                for (const name of Object.keys(predicate)) {
                    const snake = name.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
                    if (snake !== name) predicate[snake] = predicate[name];
                }
                api.predicate = Object.freeze(predicate);
                Object.freeze(api);
                Object.defineProperty(globalThis, '$', { value: api });
                const truthy = (v) => !(v === null || v === undefined || v === false || v === 0 || v === '' || v === 'false');
                const plain = (v) => (v !== null && typeof v === 'object' && typeof v.id === 'string') ? v.id : v;
                Object.defineProperty(globalThis, '__structrScript', { value: Object.freeze({
                    truthy,
                    each: (list, f) => { for (const item of (list == null ? [] : (Array.isArray(list) ? list : [list]))) { f(item); } return null; },
                    equal: (a, b) => { a = plain(a); b = plain(b); return a == null || b == null ? a == b : String(a) === String(b); },
                    concat: (...parts) => parts.map((p) => p == null ? '' : (Array.isArray(p) ? p.join('') : String(p))).join(''),
                    empty: (v) => v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0),
                    and: (...values) => values.every(truthy),
                    or: (...values) => values.some(truthy),
                    not: (v) => !truthy(v),
                }) });
                Object.defineProperty(globalThis, 'Structr', { value: api });
            })
            """
        let install = try! evaluate(prelude, file: "<herald-prelude>")
        _ = try! call(JSValueToObject(context, install, nil)!, [host], location: nil)
    }

    /// `$.grant(principal, node, 'read, write')` / `$.revoke(...)`: needs `accessControl` on the node.
    func changeGrant(_ args: [JSValueRef], granting: Bool) throws -> JSValueRef {
        let name = granting ? "grant" : "revoke"
        let job = try currentJob()
        try job.work.requireWrite()
        guard args.count >= 3,
            let principalObject = JSValueToObject(context, args[0], nil),
            let principal = EntityObject.reference(context, principalObject),
            principal.type == BuiltInType.user || principal.type == BuiltInType.group,
            let nodeObject = JSValueToObject(context, args[1], nil),
            let node = EntityObject.reference(context, nodeObject),
            JSValueIsString(context, args[2])
        else {
            throw JSThrow(
                message: "\(name) expects a User or Group, an object and permissions like 'read, write'",
                kind: "TypeError"
            )
        }
        let permissions = try Permission.parse(swiftString(args[2]))
        try job.work.changeGrant(permissions, of: principal.id, on: node, granting: granting)
        return undefined
    }

    /// `$.me`: the calling user, a stand-in object for the superuser, or null.
    func me() throws -> JSValueRef {
        switch try currentJob().work.caller {
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
        guard (try? currentJob().model.type(type)) != nil else {
            throw JSThrow(message: "\(function): unknown type '\(type)'", kind: "TypeError")
        }
        let input = args.count > 1 ? try jsonValue(args[1]) : .object([:])
        guard case .object(let object) = input else {
            throw JSThrow(message: "\(function) expects an object of properties", kind: "TypeError")
        }
        return (type, object)
    }

    /// `$.find(type)`, `$.find(type, id)`, `$.find(type, key, value)`, `$.find(type, {k: v})`, and
    /// any of these followed by predicates: `$.predicate.equals(...)`, `sort(key, desc)`, `page(n, size)`.
    func find(_ args: [JSValueRef]) throws -> JSValueRef {
        guard let first = args.first, JSValueIsString(context, first) else {
            throw JSThrow(message: "find expects a type name", kind: "TypeError")
        }
        let typeName = swiftString(first)
        let job = try currentJob()
        guard job.model.schema.types[typeName] != nil else {
            throw JSThrow(message: "find: unknown type '\(typeName)'", kind: "TypeError")
        }
        var rest = Array(args.dropFirst())
        if rest.count == 1, JSValueIsString(context, rest[0]) {
            let id = swiftString(rest[0])
            guard EntityID.isValid(id), let entity = try job.tx.fetch(type: typeName, id: id),
                try job.model.canRead(entity, try job.scope, in: job.tx)
            else { return null }
            return entityObject(EntityReference(type: typeName, id: id))
        }
        var criteria: [JSONValue] = []
        if rest.count >= 2, JSValueIsString(context, rest[0]) {
            criteria.append(.object([swiftString(rest[0]): try jsonValue(rest[1])]))
            rest.removeFirst(2)
        }
        for argument in rest { criteria.append(try jsonValue(argument)) }
        return jsArray(try query(typeName, criteria, limit: nil).map { entityObject($0) })
    }

    /// Objects matching every criterion: maps of key to value (or to a key-less predicate),
    /// `$and` / `$or` entries, and predicate objects, with optional sort and page predicates.
    func query(_ typeName: String, _ criteria: [JSONValue], limit: Int?) throws -> [EntityReference] {
        let job = try currentJob()
        let type = try job.model.type(typeName)
        var filters: [Filter] = []
        var sort: [SortKey] = []
        var page: (Int, Int)?
        for criterion in criteria {
            guard case .object(let object) = criterion else {
                throw JSThrow(
                    message: "find: expected an object or a predicate, got \(criterion.kindName)",
                    kind: "TypeError"
                )
            }
            switch object[Self.predicateKey]?.stringValue {
            case "sort"?:
                guard let key = object["key"]?.stringValue else {
                    throw JSThrow(message: "sort needs a key", kind: "TypeError")
                }
                guard key == SystemProperty.id || type.property(named: key) != nil else {
                    throw JSThrow(message: "find: \(typeName) has no property '\(key)' to sort by", kind: "TypeError")
                }
                sort.append(SortKey(key, descending: object["descending"]?.boolValue ?? false))
            case "page"?:
                let number = object["page"]?.intValue ?? 1
                let size = object["size"]?.intValue ?? 20
                guard (1...Int64(Int32.max)).contains(number), (1...10_000).contains(size) else {
                    throw JSThrow(
                        message: "page needs a page in 1...\(Int32.max) and a size in 1...10000",
                        kind: "RangeError"
                    )
                }
                page = (Int(number), Int(size))
            default:
                filters.append(try filter(type, criterion))
            }
        }
        if sort.isEmpty { sort = [SortKey(SystemProperty.createdDate)] }
        if let visibility = try job.scope.visibilityFilter { filters.append(visibility) }
        var query = EntityQuery(type: typeName, filter: filters.isEmpty ? nil : .and(filters), sort: sort, limit: limit)
        if let (number, size) = page {
            query.limit = min(size, limit ?? size)
            query.offset = (number - 1) * size
        }
        return try job.tx.fetch(query).map { EntityReference(type: typeName, id: $0.id) }
    }
}

extension Engine {
    /// The key marking predicate objects made by `$.predicate`.
    static let predicateKey = "__heraldPredicate"

    /// The filter for a map (`{k: v, $or: [...]}`) or a predicate object.
    func filter(_ type: TypeDefinition, _ criterion: JSONValue) throws -> Filter {
        guard case .object(let object) = criterion else {
            throw JSThrow(
                message: "find: expected an object or a predicate, got \(criterion.kindName)",
                kind: "TypeError"
            )
        }
        if let name = object[Self.predicateKey]?.stringValue {
            return try predicate(type, name, object, key: object["key"]?.stringValue)
        }
        var parts: [Filter] = []
        for (key, value) in object {
            switch key {
            case "$and", "$or":
                let items: [Filter]
                if case .array(let list) = value {
                    items = try list.map { try filter(type, $0) }
                } else if case .object(let entries) = value {
                    items = try entries.map { try filter(type, .object([$0.key: $0.value])) }
                } else {
                    throw JSThrow(message: "find: \(key) expects a list or an object", kind: "TypeError")
                }
                parts.append(key == "$and" ? .and(items) : .or(items))
            default:
                if case .object(let inner) = value, let name = inner[Self.predicateKey]?.stringValue {
                    parts.append(try predicate(type, name, inner, key: inner["key"]?.stringValue ?? key))
                } else {
                    parts.append(try condition(type, key, .equal, value))
                }
            }
        }
        return parts.count == 1 ? parts[0] : .and(parts)
    }

    func predicate(_ type: TypeDefinition, _ name: String, _ object: JSONObject, key: String?) throws -> Filter {
        func requireKey() throws -> String {
            guard let key else { throw JSThrow(message: "predicate \(name) needs a property name", kind: "TypeError") }
            return key
        }
        let value = object["value"] ?? .null
        switch name {
        case "equals": return try condition(type, try requireKey(), .equal, value)
        case "lt": return try condition(type, try requireKey(), .less, value)
        case "lte": return try condition(type, try requireKey(), .lessOrEqual, value)
        case "gt": return try condition(type, try requireKey(), .greater, value)
        case "gte": return try condition(type, try requireKey(), .greaterOrEqual, value)
        case "range":
            let key = try requireKey()
            var parts: [Filter] = []
            if let from = object["from"], !from.isNull { parts.append(try condition(type, key, .greaterOrEqual, from)) }
            if let to = object["to"], !to.isNull { parts.append(try condition(type, key, .lessOrEqual, to)) }
            return parts.count == 1 ? parts[0] : .and(parts)
        case "contains", "startsWith", "endsWith":
            let key = try requireKey()
            guard let property = type.property(named: key), !property.writeOnly else {
                throw JSThrow(message: "find: \(type.name) has no property '\(key)'", kind: "TypeError")
            }
            _ = property
            let match: Filter.TextMatch =
                name == "contains" ? .contains : (name == "startsWith" ? .startsWith : .endsWith)
            return .text(key, match, value.stringValue ?? "\(value)", caseInsensitive: true)
        case "empty":
            let key = try requireKey()
            if let end = type.relationships[key] { return .not(.hasRelated(end.name)) }
            _ = try condition(type, key, .equal, .null)
            return .isEmpty(key)
        case "and", "or":
            let items = try (object["items"]?.arrayValue ?? []).map { try filter(type, $0) }
            return name == "and" ? .and(items) : .or(items)
        case "not":
            guard let inner = object["items"]?.arrayValue?.first else {
                throw JSThrow(message: "not needs a predicate", kind: "TypeError")
            }
            return .not(try filter(type, inner))
        default:
            throw JSThrow(message: "unknown predicate '\(name)'", kind: "TypeError")
        }
    }

    /// `key <op> value`, the value checked against the property type; relationships match ids.
    func condition(_ type: TypeDefinition, _ key: String, _ op: Filter.Comparison, _ value: JSONValue) throws -> Filter
    {
        if let end = type.relationships[key] {
            guard op == .equal else {
                throw JSThrow(message: "find: \(key) is a relationship; compare it with ids", kind: "TypeError")
            }
            if value.isNull { return .not(.hasRelated(end.name)) }
            return .related(end.name, (value.arrayValue ?? [value]).compactMap(\.stringValue))
        }
        if key == SystemProperty.id || key == SystemProperty.owner { return .compare(key, op, value) }
        guard let property = type.property(named: key), !property.writeOnly else {
            throw JSThrow(message: "find: \(type.name) has no property '\(key)'", kind: "TypeError")
        }
        do {
            return .compare(key, op, try property.coerce(value))
        } catch {
            throw JSThrow(message: "find: \(type.name).\(key): \(error.detail)", kind: "TypeError")
        }
    }
}
