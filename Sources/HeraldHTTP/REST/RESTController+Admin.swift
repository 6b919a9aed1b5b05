import HTTPTypes
import HeraldApplication
import HeraldEvents
import HeraldSchema
import HeraldScripting
import HeraldStorage
import Hummingbird

/// The admin resources the console uses, open to admins (the superuser and `isAdmin` users)
/// only: `_script` runs a snippet, `_access/<id>` tells who may see an object and why.
extension RESTController {

    /// `POST /_script` with `{"source", "runAs"?: <user id or name>, "commit"?: false}`: runs the
    /// snippet as that user (the caller without `runAs`), rolled back unless `commit` is true.
    /// Answers 200 with `{"result", "log", "events", "committed", "error"}` whether or not the
    /// snippet failed; a malformed request is 400, an unknown user 404.
    func runScript(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        try context.requireAdmin()
        guard case .object(let input) = try await readJSON(request) else {
            throw RESTError(.badRequest, "Expected {\"source\": \"...\", \"runAs\": \"<user>\", \"commit\": false}")
        }
        guard case .string(let source)? = input["source"] else {
            throw RESTError(.badRequest, "source must be a string of JavaScript")
        }
        var commit = false
        if let value = input["commit"] {
            guard case .bool(let flag) = value else { throw RESTError(.badRequest, "commit must be true or false") }
            commit = flag
        }
        var caller = context.caller
        if let runAs = input["runAs"], runAs != .null {
            guard case .string(let user) = runAs, !user.isEmpty else {
                throw RESTError(.badRequest, "runAs must be a user's id or name")
            }
            caller = try await self.caller(named: user)
        }
        let run = try await ScriptConsole(methods: methods).run(source, as: caller, commit: commit)
        var error = JSONValue.null
        if let failure = run.failure {
            let rest = ErrorMiddleware.restError(for: failure, logger: context.logger)
            error = rest.body
        }
        let events: [JSONValue] = run.events.map { entry in
            guard case .object(var event) = EventMonitor.describe(entry) else { return .null }
            if !run.committed { event["id"] = .null }
            return .object(event)
        }
        return .json([
            "result": [
                "result": run.result,
                "log": .array(run.log.map(JSONValue.string)),
                "events": .array(events),
                "committed": .bool(run.committed),
                "runAs": .string(Self.name(of: caller)),
                "error": error,
            ]
        ])
    }

    /// The caller a user's id or name stands for.
    func caller(named user: String) async throws -> Caller {
        if user == "superuser" { return .superuser }
        let found = try await workRunner.read(.superuser) { work -> Caller? in
            let filter: Filter =
                EntityID.isValid(user)
                ? .compare(SystemProperty.id, .equal, .string(user)) : .compare("name", .equal, .string(user))
            guard let entity = try work.tx.fetch(EntityQuery(type: BuiltInType.user, filter: filter, limit: 1)).first
            else { return nil }
            return .user(
                id: entity.id,
                name: entity.values["name"]?.stringValue,
                isAdmin: entity.values["isAdmin"]?.boolValue == true
            )
        }
        guard let found else { throw RESTError.notFound("No user with id or name \(user)") }
        return found
    }

    static func name(of caller: Caller) -> String {
        switch caller {
        case .anonymous: "anonymous"
        case .superuser: "superuser"
        case .user(let id, let name, _): name ?? id
        }
    }

    /// `GET /_access/<id>`: the object's owner, visibility flags and grants, and every user who
    /// may read it with the reasons, as the access rules decide it.
    func explainAccess(_ id: String, context: HeraldRequestContext) async throws -> Response {
        try context.requireAdmin()
        let type = try await typeHolding(id, context)
        let result = try await workRunner.read(.superuser) { work -> JSONValue in
            let (model, tx) = (work.model, work.tx)
            let entity = try model.get(type.name, id: id, in: tx)
            let owner = entity.values[SystemProperty.owner]?.stringValue
            let grants = try tx.grants(on: id)
            var principals: [String: StoredEntity] = [:]
            for principal in grants.map(\.principal) {
                for kind in [BuiltInType.user, BuiltInType.group] {
                    if let found = try tx.fetch(type: kind, id: principal) { principals[principal] = found }
                }
            }
            func brief(_ id: String) -> JSONValue {
                guard let entity = principals[id] else { return ["id": .string(id), "type": .null, "name": .null] }
                return [
                    "id": .string(id), "type": .string(entity.type),
                    "name": entity.values["name"] ?? .null,
                ]
            }
            var readers: [JSONValue] = []
            let users = try tx.fetch(EntityQuery(type: BuiltInType.user, sort: [SortKey("name")], limit: 1000))
            for user in users {
                let caller = Caller.user(
                    id: user.id,
                    name: user.values["name"]?.stringValue,
                    isAdmin: user.values["isAdmin"]?.boolValue == true
                )
                let scope = try AccessScope.of(caller, schema: model.schema, in: tx)
                guard try model.canRead(entity, scope, in: tx) else { continue }
                var reasons: [JSONValue] = []
                if caller.isAdmin { reasons.append("is an admin") }
                if entity.values[SystemProperty.visibleToAuthenticatedUsers]?.boolValue == true {
                    reasons.append("visibleToAuthenticatedUsers")
                }
                if owner == user.id { reasons.append("owns it") }
                if entity.id == user.id { reasons.append("is this user") }
                for grant in grants
                where grant.permissions.contains(.read) && scope.principals.contains(grant.principal) {
                    if grant.principal == user.id {
                        reasons.append("read granted to the user")
                    } else {
                        let group = principals[grant.principal]?.values["name"]?.stringValue ?? grant.principal
                        reasons.append(.string("read granted to group \(group)"))
                    }
                }
                readers.append([
                    "id": .string(user.id), "name": user.values["name"] ?? .null, "reasons": .array(reasons),
                ])
            }
            return [
                "id": .string(id),
                "type": .string(type.name),
                "name": entity.values["name"] ?? .null,
                "owner": owner.map { .string($0) } ?? .null,
                "visibleToPublicUsers": .bool(entity.values[SystemProperty.visibleToPublicUsers]?.boolValue == true),
                "visibleToAuthenticatedUsers": .bool(
                    entity.values[SystemProperty.visibleToAuthenticatedUsers]?.boolValue == true
                ),
                "grants": .array(
                    grants.map { grant in
                        [
                            "principal": brief(grant.principal),
                            "rights": .array(
                                Permission.allCases.filter(grant.permissions.contains).map { .string($0.rawValue) }
                            ),
                        ]
                    }
                ),
                "readers": .array(readers),
                "superuser": "always",
            ]
        }
        return .json(["result": result])
    }

    /// `PUT /_access/<id>` with `{"principal": <user or group id>, "rights": ["read", ...]}`:
    /// the principal holds exactly those rights on the object afterwards (`[]` takes them all).
    func setGrant(_ id: String, request: Request, context: HeraldRequestContext) async throws -> Response {
        try context.requireAdmin()
        guard case .object(let input) = try await readJSON(request),
            case .string(let principal)? = input["principal"], EntityID.isValid(principal),
            case .array(let names)? = input["rights"]
        else {
            throw RESTError(
                .badRequest,
                "Expected {\"principal\": \"<user or group id>\", \"rights\": [\"read\", ...]}"
            )
        }
        var rights = Set<Permission>()
        for name in names {
            guard let text = name.stringValue, let right = Permission(rawValue: text) else {
                throw RESTError(
                    .badRequest,
                    "rights holds \(name.jsonString): use read, write, delete or accessControl"
                )
            }
            rights.insert(right)
        }
        let type = try await typeHolding(id, context)
        try await workRunner.write(context.caller, hooks: false) { [rights] work in
            let isPrincipal =
                try work.tx.fetch(type: BuiltInType.user, id: principal) != nil
                || work.tx.fetch(type: BuiltInType.group, id: principal) != nil
            guard isPrincipal else { throw DataError.notFound(type: "User or Group", id: principal) }
            let node = EntityReference(type: type.name, id: id)
            let missing = Set(Permission.allCases).subtracting(rights)
            if !missing.isEmpty { try work.changeGrant(missing, of: principal, on: node, granting: false) }
            if !rights.isEmpty { try work.changeGrant(rights, of: principal, on: node, granting: true) }
        }
        return try await explainAccess(id, context: context)
    }
}
