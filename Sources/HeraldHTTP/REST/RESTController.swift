import Foundation
import HTTPTypes
import HeraldApplication
import HeraldSchema
import HeraldScripting
import HeraldStorage
import Hummingbird
import Logging

/// The Structr-compatible REST API under `/structr/rest/`.
public struct RESTController: Sendable {
    public static let root = "/structr/rest"

    /// Reads and writes run here, each as one unit of work.
    let workRunner: WorkRunner
    /// Methods run here, on the engine threads.
    let methods: MethodRunner
    /// The model of the newest schema, for routing; each transaction uses its own.
    var model: DataModel { workRunner.model }
    let policy: any AccessPolicy
    let sessions: Sessions
    let tokens: Tokens
    let credentials: UserCredentials
    let maxBodySize: Int
    /// Objects one POST may create; a batch holds the single writer while it runs.
    let maxBatchSize: Int
    /// Lists asked for as `text/event-stream` go here; nil answers them as JSON.
    let live: LiveQueryController?

    public init(
        methods: MethodRunner,
        policy: any AccessPolicy,
        sessions: Sessions,
        tokens: Tokens,
        credentials: UserCredentials,
        maxBodySize: Int,
        maxBatchSize: Int = 1000,
        live: LiveQueryController? = nil
    ) {
        self.live = live
        self.maxBatchSize = maxBatchSize
        self.tokens = tokens
        self.workRunner = methods.workRunner
        self.methods = methods
        self.policy = policy
        self.sessions = sessions
        self.credentials = credentials
        self.maxBodySize = maxBodySize
    }

    /// Registers the routes: every method on every path below the root goes to `dispatch`.
    public func register(on router: Router<HeraldRequestContext>) {
        let methods: [HTTPRequest.Method] = [.get, .post, .put, .delete, .patch, .head, .options]
        for method in methods {
            router.on(RouterPath("\(Self.root)/**"), method: method) { request, context in
                try await dispatch(request, context: context)
            }
            router.on(RouterPath(Self.root), method: method) { _, _ -> Response in
                throw RESTError.notFound("Not found")
            }
        }
    }

    /// The kinds of REST resource.
    enum Resource {
        case login, logout, me, token
        case schema
        /// `/_script`: the admin console's script runner.
        case script
        /// `/_access/<id>`: who may see an object and why, and its grants.
        case access(id: String)
        case collection(TypeDefinition)
        case entity(TypeDefinition, id: String)
        /// `/<Type>/<view>` and `/<Type>/<id>/<view>`: read-only.
        case collectionView(TypeDefinition, view: String)
        case entityView(TypeDefinition, id: String, view: String)
        /// `/<uuid>`: an object of whatever type holds that id.
        case untypedEntity(id: String)
        /// `/<Type>/<id>/<relationship>`: the objects related through it.
        case related(TypeDefinition, id: String, RelationshipEnd)
        case staticMethod(TypeDefinition, name: String)
        case instanceMethod(TypeDefinition, id: String, name: String)
        case globalMethod(name: String)

        var signature: String {
            switch self {
            case .login: "_login"
            case .logout: "_logout"
            case .token: "_token"
            case .me: "User"
            case .schema: "_schema"
            case .script: "_script"
            case .access: "_access"
            case .collection(let t), .collectionView(let t, _): t.name
            case .entity(let t, _), .entityView(let t, _, _): "\(t.name)/_id"
            case .untypedEntity: "_id"
            case .related(let t, _, let end): "\(t.name)/_id/\(end.name)"
            case .staticMethod(let t, let name): "\(t.name)/\(name)"
            case .instanceMethod(let t, _, let name): "\(t.name)/_id/\(name)"
            case .globalMethod(let name): name
            }
        }
    }

    func resource(_ components: [Substring]) throws -> Resource {
        let parts = components.map(String.init)
        guard let first = parts.first else { throw RESTError.notFound("Not found") }
        switch parts {
        case ["_schema"]: return .schema
        case ["login"]: return .login
        case ["logout"]: return .logout
        case ["me"]: return .me
        case ["token"]: return .token
        case ["_script"]: return .script
        default: break
        }
        if parts.count == 2, parts[0] == "_access" {
            guard EntityID.isValid(parts[1]) else { throw RESTError.notFound("No object with id \(parts[1])") }
            return .access(id: parts[1])
        }
        guard let type = model.schema.types[first] else {
            if parts.count == 1, model.schema.globalMethods.contains(where: { $0.name == first }) {
                return .globalMethod(name: first)
            }
            if parts.count == 1, EntityID.isValid(first) { return .untypedEntity(id: first) }
            throw RESTError.notFound("No type or global method named \(first)")
        }
        switch parts.count {
        case 1: return .collection(type)
        case 2:
            if EntityID.isValid(parts[1]) { return .entity(type, id: parts[1]) }
            if type.hasView(parts[1]) { return .collectionView(type, view: parts[1]) }
            if Naming.isMethodName(parts[1]) { return .staticMethod(type, name: parts[1]) }
            throw RESTError.notFound("No \(type.name) with id \(parts[1])")
        case 3:
            guard EntityID.isValid(parts[1]) else { throw RESTError.notFound("No \(type.name) with id \(parts[1])") }
            if let end = type.relationships[parts[2]] { return .related(type, id: parts[1], end) }
            if type.hasView(parts[2]) { return .entityView(type, id: parts[1], view: parts[2]) }
            return .instanceMethod(type, id: parts[1], name: parts[2])
        default:
            throw RESTError.notFound("Not found")
        }
    }

    func dispatch(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        // HEAD is GET without the body: same checks, same status and headers.
        guard request.method != .head else {
            // Checked against the grant's HEAD bits, as in Structr.
            let response = try await dispatch(request, as: .get, grant: .head, context: context)
            var head = Response(status: response.status, headers: response.headers)
            if let length = response.body.contentLength { head.headers[.contentLength] = String(length) }
            return head
        }
        return try await dispatch(request, as: request.method, grant: request.method, context: context)
    }

    /// Serves `request` as `method`; the resource grant is checked for `grant`.
    func dispatch(
        _ request: Request,
        as method: HTTPRequest.Method,
        grant: HTTPRequest.Method,
        context: HeraldRequestContext
    ) async throws -> Response {
        var resource = try resource(context.parameters.getCatchAll())
        switch (resource, method) {
        case (.login, .post): return try await login(request, context: context)
        case (.logout, .post): return try await logout(request)
        case (.me, .get): return try await me(context)
        case (.token, .post): return try await token(request, context: context)
        case (.login, _), (.logout, _), (.token, _): throw RESTError.methodNotAllowed(method, allowed: [.post])
        case (.me, _): throw RESTError.methodNotAllowed(method, allowed: [.get])
        case (.script, .post): return try await runScript(request, context: context)
        case (.script, _): throw RESTError.methodNotAllowed(method, allowed: [.post])
        case (.access(let id), .get): return try await explainAccess(id, context: context)
        case (.access(let id), .put): return try await setGrant(id, request: request, context: context)
        case (.access, _): throw RESTError.methodNotAllowed(method, allowed: [.get, .put])
        default: break
        }
        if case .untypedEntity(let id) = resource { resource = .entity(try await typeHolding(id, context), id: id) }
        try await policy.authorize(context.caller, RESTOperation(method: grant, signature: resource.signature))
        switch (resource, method) {
        case (.login, _), (.logout, _), (.me, _), (.token, _), (.script, _), (.access, _):
            throw RESTError.notFound("Not found")
        case (.schema, .get):
            guard case .object(var listing) = model.schema.listing else {
                return .json(["result": model.schema.listing])
            }
            listing["status"] = workRunner.schemaStatus.json
            return .json(["result": .object(listing)])
        case (.schema, _):
            throw RESTError.methodNotAllowed(method, allowed: [.get])
        case (.collection(let type), .get):
            if let live, LiveQueryController.asksForEvents(request.headers[.accept]) {
                return try await live.stream(type, view: nil, request: request, context: context)
            }
            return try await list(type, request: request, context: context)
        case (.collection(let type), .post):
            return try await create(type, request: request, context: context)
        case (.collection(let type), .patch):
            return try await updateMany(type, request: request, context: context)
        case (.collection, _):
            throw RESTError.methodNotAllowed(method, allowed: [.get, .post, .patch])
        case (.entity(let type, let id), .get):
            return try await get(type, id: id, request: request, context: context)
        case (.entity(let type, let id), .put):
            return try await update(type, id: id, request: request, context: context)
        case (.entity(let type, let id), .delete):
            return try await delete(type, id: id, context: context)
        case (.entity, _):
            throw RESTError.methodNotAllowed(method, allowed: [.get, .put, .delete])
        case (.collectionView(let type, let view), .get):
            if let live, LiveQueryController.asksForEvents(request.headers[.accept]) {
                return try await live.stream(type, view: view, request: request, context: context)
            }
            return try await list(type, view: view, request: request, context: context)
        case (.entityView(let type, let id, let view), .get):
            return try await get(type, id: id, view: view, request: request, context: context)
        case (.collectionView, _), (.entityView, _):
            throw RESTError.methodNotAllowed(method, allowed: [.get])
        case (.untypedEntity, _):
            throw RESTError.notFound("Not found")
        case (.related(let type, let id, let end), .get):
            return try await listRelated(type, id: id, end, request: request, context: context)
        case (.related(let type, let id, let end), .post):
            return try await createRelated(type, id: id, end, request: request, context: context)
        case (.related, _):
            throw RESTError.methodNotAllowed(method, allowed: [.get, .post])
        case (.staticMethod(let type, let name), .post):
            return try await callMethod(
                try self.method(named: name, of: type),
                id: nil,
                request: request,
                context: context
            )
        case (.instanceMethod(let type, let id, let name), .post):
            return try await callMethod(
                try self.method(named: name, of: type),
                id: id,
                request: request,
                context: context
            )
        case (.globalMethod(let name), .post):
            guard let method = model.schema.globalMethods.first(where: { $0.name == name }) else {
                throw RESTError.notFound("No type or global method named \(name)")
            }
            return try await callMethod(method, id: nil, request: request, context: context)
        case (.staticMethod, _), (.instanceMethod, _), (.globalMethod, _):
            throw RESTError.methodNotAllowed(method, allowed: [.post])
        }
    }

    // MARK: Sessions

    /// `POST /login` with `{"name" | "eMail", "password"}`: a new session (never a reused id).
    func login(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        // A body of the wrong shape gets the answer of a wrong password, after the same work, so
        // a client learns nothing from how it is refused.
        let body = try? await readJSON(request)
        guard case .object(let input)? = body, case .string(let password)? = input["password"],
            input["name"]?.stringValue != nil || input["eMail"]?.stringValue != nil
        else { try await credentials.refuse(client: context.clientAddress) }
        let name = input["name"]?.stringValue
        // The superuser authenticates per request with X-User / X-Password, never by session.
        guard name != "superuser" else { throw UserCredentials.failure }
        let caller = try await credentials.verify(
            name: name,
            eMail: input["eMail"]?.stringValue,
            password: password,
            client: context.clientAddress
        )
        guard let userID = caller.userID else { throw UserCredentials.failure }
        if let old = request.cookies[Sessions.cookieName]?.value { try await sessions.end(old) }
        let token = try await sessions.create(for: userID)
        var response = Response.json(["result": try await renderUser(userID)])
        response.setCookie(sessions.cookie(token))
        return response
    }

    /// `POST /token` with `{"name" | "eMail", "password"}` or `{"refresh_token"}`: a new pair of
    /// tokens, and the access token as a cookie.
    func token(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        let body = try? await readJSON(request)
        guard case .object(let input)? = body else { try await credentials.refuse(client: context.clientAddress) }
        let userID: String
        if case .string(let refresh)? = input["refresh_token"] {
            userID = try await tokens.user(from: refresh, kind: "refresh").id
        } else {
            guard case .string(let password)? = input["password"],
                input["name"]?.stringValue != nil || input["eMail"]?.stringValue != nil,
                input["name"]?.stringValue != "superuser"
            else { try await credentials.refuse(client: context.clientAddress) }
            let caller = try await credentials.verify(
                name: input["name"]?.stringValue,
                eMail: input["eMail"]?.stringValue,
                password: password,
                client: context.clientAddress
            )
            guard let id = caller.userID else { throw UserCredentials.failure }
            userID = id
        }
        let issued = try await tokens.issue(for: userID)
        var response = Response.json(issued.body)
        response.setCookie(tokens.cookie(issued.access))
        return response
    }

    /// `POST /logout`: ends the session of the cookie and tells the browser to forget it.
    func logout(_ request: Request) async throws -> Response {
        if let token = request.cookies[Sessions.cookieName]?.value { try await sessions.end(token) }
        var response = Response.json(["result": .null])
        response.setCookie(sessions.removalCookie())
        return response
    }

    /// `GET /me`: the caller.
    func me(_ context: HeraldRequestContext) async throws -> Response {
        switch context.caller {
        case .anonymous:
            throw RESTError(.unauthorized, "Not logged in")
        case .superuser:
            return .json(["result": ["id": .null, "type": "User", "name": "superuser", "isAdmin": true]])
        case .user(let id, _, _):
            return .json(["result": try await renderUser(id)])
        }
    }

    func renderUser(_ id: String) async throws -> JSONValue {
        try await workRunner.read(.user(id: id, name: nil, isAdmin: false)) { work in
            try work.model.render(
                try work.model.get(BuiltInType.user, id: id, in: work.tx),
                as: try work.scope,
                in: work.tx
            )
        }
    }

    // MARK: Handlers

    /// `GET /<Type>` with filters, sort and paging; `within` narrows it to some ids (the objects
    /// of a relationship), read in the same transaction.
    func list(
        _ type: TypeDefinition,
        view: String? = nil,
        request: Request,
        context: HeraldRequestContext,
        within: (@Sendable (UnitOfWork) throws -> [String])? = nil
    ) async throws -> Response {
        let parameters = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
        let parsed = try RESTQuery(type: type, parameters: parameters)
        let nesting = Nesting.forView(view, depth: parsed.nestingDepth)
        let shown = view.flatMap { type.views[$0] }
        let started = ContinuousClock.now
        let (rendered, total, queryTime, countTime) = try await workRunner.read(context.caller) { work in
            let (model, tx) = (work.model, work.tx)
            let clock = ContinuousClock()
            let t0 = clock.now
            let scope = try work.scope
            let query = UnitOfWork.narrowed(parsed.query, within: try within.map { try $0(work) }, as: scope)
            let entities = try tx.fetch(query)
            let t1 = clock.now
            let total = query.limit == nil ? entities.count : try tx.count(query)
            let t2 = clock.now
            let rendered = try entities.map {
                try model.render($0, nesting: nesting, view: shown, as: scope, in: tx)
            }
            return (rendered, total, t1 - t0, t2 - t1)
        }
        let serialization = ContinuousClock.now - started - queryTime - countTime
        var body: JSONObject = [
            "result": .array(rendered),
            "query_time": .string(Self.seconds(queryTime)),
            "result_count": .int(Int64(total)),
            "page_count": .int(Int64(Self.pageCount(total: total, pageSize: parsed.pageSize))),
            "result_count_time": .string(Self.seconds(countTime)),
            "serialization_time": .string(Self.seconds(serialization)),
        ]
        if let page = parsed.page, let size = parsed.pageSize {
            body["page"] = .int(Int64(page))
            body["page_size"] = .int(Int64(size))
        }
        return .json(.object(body))
    }

    /// `GET /<Type>/<id>/<relationship>`: the related objects the caller may see, with the
    /// filters, sort and paging of a list. The relationship must lead to one type.
    func listRelated(
        _ type: TypeDefinition,
        id: String,
        _ end: RelationshipEnd,
        request: Request,
        context: HeraldRequestContext
    ) async throws -> Response {
        let target = try relatedType(end, of: type)
        return try await list(target, request: request, context: context) { work in
            // The object itself must be visible: its relationships are part of it.
            _ = try work.model.get(type.name, id: id, as: try work.scope, in: work.tx)
            return try work.tx.related(end, of: id).map(\.id)
        }
    }

    /// `POST /<Type>/<id>/<relationship>`: creates an object of the related type and links it,
    /// in one unit of work (hooks of both run).
    func createRelated(
        _ type: TypeDefinition,
        id: String,
        _ end: RelationshipEnd,
        request: Request,
        context: HeraldRequestContext
    ) async throws -> Response {
        let target = try relatedType(end, of: type)
        let body = try await readJSON(request, empty: .object([:]))
        guard let input = body.objectValue else {
            throw RESTError(.badRequest, "Expected a JSON object, got \(body.kindName)")
        }
        let hooks = target.hasHooks(for: .onCreate) || type.hasHooks(for: .onSave)
        let started = ContinuousClock.now
        let created = try await workRunner.write(context.caller, hooks: hooks) { work in
            // Linking it checks that the caller sees and may write the parent; a refusal rolls
            // the create back too.
            let parent = EntityReference(type: type.name, id: id)
            let object = try work.create(target.name, input)
            let current = end.cardinality == .one ? [] : try work.tx.related(end, of: id).map(\.id)
            try work.update(parent, [end.name: .array((current + [object.id]).map(JSONValue.string))])
            return object.id
        }
        var response = Response.json(
            Self.envelope(
                .array([.string(created)]),
                count: 1,
                queryTime: ContinuousClock.now - started,
                started: started
            ),
            status: .created
        )
        let host = request.head.authority.map { "http://\($0)" } ?? ""
        response.headers[.location] = "\(host)\(Self.root)/\(target.name)/\(created)"
        return response
    }

    /// The one type a relationship end leads to; a nested collection of several types is refused.
    func relatedType(_ end: RelationshipEnd, of type: TypeDefinition) throws -> TypeDefinition {
        guard end.otherTypes.count == 1, let target = model.schema.types[end.otherTypes[0]] else {
            throw RESTError(
                .badRequest,
                "\(type.name).\(end.name) leads to \(end.otherTypes.joined(separator: " or ")); list those types instead"
            )
        }
        return target
    }

    /// The type of the object with `id` the caller may see, for `/structr/rest/<uuid>`.
    func typeHolding(_ id: String, _ context: HeraldRequestContext) async throws -> TypeDefinition {
        let name = try await workRunner.read(context.caller) { work -> String? in
            let scope = try work.scope
            for type in work.model.schema.types.keys.sorted() {
                if let entity = try work.tx.fetch(type: type, id: id),
                    try work.model.canRead(entity, scope, in: work.tx)
                {
                    return type
                }
            }
            return nil
        }
        guard let name, let type = model.schema.types[name] else { throw RESTError.notFound("No object with id \(id)") }
        return type
    }

    func get(
        _ type: TypeDefinition,
        id: String,
        view: String? = nil,
        request: Request,
        context: HeraldRequestContext
    ) async throws -> Response {
        let depth = try request.uri.queryParameters["_outputNestingDepth"].map {
            try RESTQuery.nestingDepth(String($0))
        }
        let nesting = Nesting.forView(view, depth: depth ?? Nesting.defaultDepth)
        let shown = view.flatMap { type.views[$0] }
        let started = ContinuousClock.now
        let (rendered, queryTime) = try await workRunner.read(context.caller) { work in
            let clock = ContinuousClock()
            let t0 = clock.now
            let scope = try work.scope
            let entity = try work.model.get(type.name, id: id, as: scope, in: work.tx)
            let queried = clock.now - t0
            return (try work.model.render(entity, nesting: nesting, view: shown, as: scope, in: work.tx), queried)
        }
        return .json(Self.envelope(rendered, count: 1, queryTime: queryTime, started: started))
    }

    func create(_ type: TypeDefinition, request: Request, context: HeraldRequestContext) async throws -> Response {
        // An empty body creates an object with its defaults, as in Structr.
        let body = try await readJSON(request, empty: .object([:]))
        let inputs: [JSONObject]
        switch body {
        case .object(let object): inputs = [object]
        case .array(let list):
            guard list.count <= maxBatchSize else {
                throw RESTError(
                    .contentTooLarge,
                    "A batch may create at most \(maxBatchSize) objects (maxBatchSize), got \(list.count); send it in parts"
                )
            }
            var objects: [JSONObject] = []
            for (index, element) in list.enumerated() {
                guard let object = element.objectValue else {
                    throw RESTError(.badRequest, "Element \(index) of the array is \(element.kindName), not an object")
                }
                objects.append(object)
            }
            inputs = objects
        default:
            throw RESTError(.badRequest, "Expected a JSON object or an array of objects, got \(body.kindName)")
        }
        let started = ContinuousClock.now
        let ids = try await workRunner.create(type.name, inputs, caller: context.caller)
        var response = Response.json(
            Self.envelope(
                .array(ids.map(JSONValue.string)),
                count: ids.count,
                queryTime: ContinuousClock.now - started,
                started: started
            ),
            status: .created
        )
        if let first = ids.first {
            let host = request.head.authority.map { "http://\($0)" } ?? ""
            response.headers[.location] = "\(host)\(Self.root)/\(type.name)/\(first)"
        }
        return response
    }

    func update(_ type: TypeDefinition, id: String, request: Request, context: HeraldRequestContext) async throws
        -> Response
    {
        let body = try await readJSON(request, empty: .object([:]))
        guard let input = body.objectValue else {
            throw RESTError(.badRequest, "Expected a JSON object, got \(body.kindName)")
        }
        // An empty body (or `{}`) changes nothing and runs no hook, as in Structr: the answer is
        // the object as it is.
        if input.isEmpty { return try await get(type, id: id, request: request, context: context) }
        let rendered = try await workRunner.update(type.name, id: id, input, caller: context.caller)
        return .json(["result": rendered])
    }

    func delete(_ type: TypeDefinition, id: String, context: HeraldRequestContext) async throws -> Response {
        try await workRunner.delete(type.name, id: id, caller: context.caller)
        return .json(["result": ["id": .string(id), "type": .string(type.name), "deleted": true]])
    }

    /// `PATCH /<Type>` with `[{"id": ..., <keys>}, ...]`: Structr's bulk update, every object in
    /// one unit of work, so one refusal changes none of them.
    func updateMany(_ type: TypeDefinition, request: Request, context: HeraldRequestContext) async throws
        -> Response
    {
        let body = try await readJSON(request)
        guard case .array(let list) = body else {
            throw RESTError(.badRequest, "Expected an array of objects with an id, got \(body.kindName)")
        }
        guard list.count <= maxBatchSize else {
            throw RESTError(
                .contentTooLarge,
                "A batch may update at most \(maxBatchSize) objects (maxBatchSize), got \(list.count); send it in parts"
            )
        }
        var updates: [(String, JSONObject)] = []
        for (index, element) in list.enumerated() {
            guard var object = element.objectValue, let id = object[SystemProperty.id]?.stringValue else {
                throw RESTError(.badRequest, "Element \(index) of the array is not an object with an id")
            }
            object[SystemProperty.id] = nil
            updates.append((id, object))
        }
        let started = ContinuousClock.now
        let ids = try await workRunner.write(context.caller, hooks: type.hasHooks(for: .onSave)) { [updates] work in
            for (id, input) in updates where !input.isEmpty {
                try work.update(EntityReference(type: type.name, id: id), input)
            }
            return updates.map(\.0)
        }
        return .json(
            Self.envelope(
                .array(ids.map(JSONValue.string)),
                count: ids.count,
                queryTime: ContinuousClock.now - started,
                started: started
            )
        )
    }

    /// A callable method of a type: lifecycle hooks are not callable over REST.
    func method(named name: String, of type: TypeDefinition) throws -> MethodDefinition {
        guard let method = type.methods.first(where: { $0.name == name && $0.lifecycleEvent == nil }) else {
            throw RESTError.notFound("Type \(type.name) has no method \(name)")
        }
        return method
    }

    /// Runs a method with the JSON body as `$.arguments`: `{"result": <returned value>}`.
    func callMethod(_ method: MethodDefinition, id: String?, request: Request, context: HeraldRequestContext)
        async throws -> Response
    {
        let buffer = try await request.body.collect(upTo: maxBodySize)
        var arguments = JSONValue.object([:])
        if buffer.readableBytes > 0 {
            do {
                arguments = try JSONValue(parsing: buffer.readableBytesView)
            } catch {
                throw RESTError(.badRequest, "Malformed JSON: \(error)")
            }
        }
        var parameters: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { parameters[String(key)] = String(value) }
        let started = ContinuousClock.now
        let result = try await methods.call(
            method: method,
            id: id,
            arguments: arguments,
            request: parameters,
            caller: context.caller
        )
        let count = result.arrayValue?.count ?? (result == .null ? 0 : 1)
        return .json(Self.envelope(result, count: count, queryTime: ContinuousClock.now - started, started: started))
    }

    // MARK: Helpers

    /// Reads the body as JSON: 413 over the size limit, 400 naming where the JSON breaks.
    /// An empty body is `empty` when given, else a 400.
    func readJSON(_ request: Request, empty: JSONValue? = nil) async throws -> JSONValue {
        let buffer = try await request.body.collect(upTo: maxBodySize)
        guard buffer.readableBytes > 0 else {
            if let empty { return empty }
            throw RESTError(.badRequest, "Request body is empty; expected JSON")
        }
        do {
            return try JSONValue(parsing: buffer.readableBytesView)
        } catch {
            throw RESTError(.badRequest, "Malformed JSON: \(error)")
        }
    }

    /// Structr's envelope around a single result: counts and timings next to `result`.
    static func envelope(_ result: JSONValue, count: Int, queryTime: Duration, started: ContinuousClock.Instant)
        -> JSONValue
    {
        [
            "result": result,
            "result_count": .int(Int64(count)),
            "page_count": .int(count == 0 ? 0 : 1),
            "query_time": .string(seconds(queryTime)),
            "serialization_time": .string(seconds(ContinuousClock.now - started - queryTime)),
        ]
    }

    /// Pages of `pageSize` needed for `total` objects: 0 for none, 1 without paging.
    static func pageCount(total: Int, pageSize: Int?) -> Int {
        guard total > 0 else { return 0 }
        guard let pageSize else { return 1 }
        return (total + pageSize - 1) / pageSize
    }

    static func seconds(_ duration: Duration) -> String {
        let (s, attoseconds) = duration.components
        let value = Double(s) + Double(attoseconds) / 1e18
        return String(format: "%.9f", value)
    }
}
