import Foundation
import HeraldSchema
import NIOHTTP1
import Testing

/// Who sees and may do what: resource grants, visibility flags, ownership, object grants through
/// nested groups, and the escalations that are always refused.
@Suite struct AccessTests {
    static let files: [String: String] = projectSchema.merging([
        "global/visibleProjects.js": "{ return $.find('Project', $.predicate.sort('name')).map(p => p.name); }",
        "global/share.js": """
        {
            const project = $.find('Project', $.arguments.project);
            const group = $.first($.find('Group', 'name', $.arguments.group));
            $.grant(group, project, $.arguments.rights);
        }
        """,
        "global/unshare.js": """
        {
            const project = $.find('Project', $.arguments.project);
            const group = $.first($.find('Group', 'name', $.arguments.group));
            $.revoke(group, project, $.arguments.rights);
        }
        """,
        "global/privilegedCount.js": "{ return $.doPrivileged(() => $.size($.find('Project'))); }",
    ]) { $1 }

    struct World {
        let server: TestServer
        var ids: [String: String] = [:]

        func headers(_ user: String?) -> [String: String] {
            guard let user else { return [:] }
            if user == "superuser" { return TestServer.superuser }
            return ["X-User": user, "X-Password": "\(user)-pw"]
        }

        func request(_ user: String?, _ method: HTTPMethod, _ path: String, _ body: String? = nil) async throws
            -> HTTPResult
        {
            try await server.request(method, path, body: body, headers: headers(user))
        }

        func names(_ user: String?, _ path: String = "/structr/rest/Project?_sort=name") async throws -> [String] {
            let answer = try await request(user, .GET, path)
            return (answer.result.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        }
    }

    func world() async throws -> World {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        var world = World(server: server)
        for user in ["olga", "otto", "mia"] {
            world.ids[user] = try await server.create("User", #"{"name": "\#(user)", "password": "\#(user)-pw"}"#)
        }
        _ = try await server.create("User", #"{"name": "root", "password": "root-pw", "isAdmin": true}"#)
        world.ids["inner"] = try await server.create(
            "Group",
            #"{"name": "inner", "visibleToAuthenticatedUsers": true, "members": ["\#(world.ids["mia"]!)"]}"#
        )
        world.ids["outer"] = try await server.create(
            "Group",
            #"{"name": "outer", "visibleToAuthenticatedUsers": true, "members": ["\#(world.ids["inner"]!)"]}"#
        )
        for (signature, flags) in [
            ("Project", 15 + 16), ("Project/_id", 15 + 16), ("User/_id", 3), ("User", 4), ("ResourceAccess", 5),
            ("visibleProjects", 4), ("privilegedCount", 4), ("share", 4),
        ] {
            _ = try await server.create("ResourceAccess", #"{"signature": "\#(signature)", "flags": \#(flags)}"#)
        }
        for (name, extra) in [
            ("private", ""), ("team", #", "visibleToAuthenticatedUsers": true"#),
            ("public", #", "visibleToPublicUsers": true"#),
        ] {
            let answer = try await world.request(
                "olga",
                .POST,
                "/structr/rest/Project",
                #"{"name": "\#(name)"\#(extra)}"#
            )
            world.ids[name] = try #require(answer.result.arrayValue?.first?.stringValue, "\(answer.text)")
        }
        world.ids["shared"] = try await server.create("Project", #"{"name": "shared"}"#)
        return world
    }

    @Test func visibilityByFlagsOwnershipAndNestedGroupGrants() async throws {
        let w = try await world()
        defer { Task { try? await w.server.stop() } }
        #expect(try await w.names(nil) == ["public"])
        #expect(try await w.names("otto") == ["team"])
        #expect(try await w.names("olga") == ["private", "public", "team"])
        #expect(try await w.names("mia") == ["team"])
        #expect(try await w.names("root") == ["private", "public", "shared", "team"])
        #expect(try await w.names("superuser") == ["private", "public", "shared", "team"])

        // A read grant to the outer group reaches mia through the inner group.
        #expect(
            try await w.request(
                "superuser",
                .POST,
                "/structr/rest/share",
                #"{"project": "\#(w.ids["shared"]!)", "group": "outer", "rights": "read"}"#
            ).status == 200
        )
        #expect(try await w.names("mia") == ["shared", "team"])
        #expect(try await w.names("otto") == ["team"])
        #expect(try await w.request("mia", .GET, "/structr/rest/Project/\(w.ids["shared"]!)").status == 200)
        #expect(try await w.request("otto", .GET, "/structr/rest/Project/\(w.ids["shared"]!)").status == 404)
        #expect(try await w.request(nil, .GET, "/structr/rest/Project/\(w.ids["private"]!)").status == 404)

        // Scripts see what their caller sees; doPrivileged sees everything.
        #expect(try await w.request("mia", .POST, "/structr/rest/visibleProjects").result == ["shared", "team"])
        #expect(try await w.request("otto", .POST, "/structr/rest/privilegedCount").result == 4)

        #expect(
            try await w.request(
                "superuser",
                .POST,
                "/structr/rest/unshare",
                #"{"project": "\#(w.ids["shared"]!)", "group": "outer", "rights": "read"}"#
            ).status == 200
        )
        #expect(try await w.names("mia") == ["team"])
    }

    /// Groups a user acts as are cached between requests: every change to a membership, from
    /// the group's side or the user's, takes effect on the very next request.
    @Test func aMembershipChangeTakesEffectOnTheNextRequestThoughGroupsAreCached() async throws {
        let w = try await world()
        defer { Task { try? await w.server.stop() } }
        let share = #"{"project": "\#(w.ids["shared"]!)", "group": "inner", "rights": "read"}"#
        #expect(try await w.request("superuser", .POST, "/structr/rest/share", share).status == 200)
        // Both users' groups are now cached by use.
        #expect(try await w.names("mia") == ["shared", "team"])
        #expect(try await w.names("otto") == ["team"])
        let inner = "/structr/rest/Group/\(w.ids["inner"]!)"
        #expect(try await w.request("superuser", .PUT, inner, #"{"members": ["\#(w.ids["otto"]!)"]}"#).status == 200)
        #expect(try await w.names("mia") == ["team"])
        #expect(try await w.names("otto") == ["shared", "team"])
        #expect(try await w.request("otto", .GET, "/structr/rest/Project/\(w.ids["shared"]!)").status == 200)
        // From the user's side: mia joins the outer group, which holds the inner one; nothing
        // reaches her through it. Then she joins the inner one itself.
        let mia = "/structr/rest/User/\(w.ids["mia"]!)"
        #expect(try await w.request("superuser", .PUT, mia, #"{"groups": ["\#(w.ids["outer"]!)"]}"#).status == 200)
        #expect(try await w.names("mia") == ["team"])
        #expect(try await w.request("superuser", .PUT, mia, #"{"groups": ["\#(w.ids["inner"]!)"]}"#).status == 200)
        #expect(try await w.names("mia") == ["shared", "team"])
        // Deleting the group takes its rights with it.
        #expect(try await w.request("superuser", .DELETE, inner).status == 200)
        #expect(try await w.names("mia") == ["team"])
        #expect(try await w.names("otto") == ["team"])
    }

    @Test func writingAndDeletingNeedTheirRights() async throws {
        let w = try await world()
        defer { Task { try? await w.server.stop() } }
        let team = w.ids["team"]!
        #expect(
            try await w.request("otto", .PUT, "/structr/rest/Project/\(team)", #"{"notes": "mine now"}"#).status == 403
        )
        #expect(try await w.request("otto", .DELETE, "/structr/rest/Project/\(team)").status == 403)
        #expect(
            try await w.request("otto", .PUT, "/structr/rest/Project/\(w.ids["private"]!)", #"{"notes": "x"}"#).status
                == 404
        )
        #expect(
            try await w.request("olga", .PUT, "/structr/rest/Project/\(team)", #"{"notes": "owner"}"#).status == 200
        )
        // A write grant through the group lets mia write but not delete.
        #expect(
            try await w.request(
                "superuser",
                .POST,
                "/structr/rest/share",
                #"{"project": "\#(team)", "group": "outer", "rights": "write"}"#
            ).status == 200
        )
        #expect(
            try await w.request("mia", .PUT, "/structr/rest/Project/\(team)", #"{"notes": "member"}"#).status == 200
        )
        #expect(try await w.request("mia", .DELETE, "/structr/rest/Project/\(team)").status == 403)
        // Sharing needs accessControl: mia (write only) cannot pass rights on.
        let reshare = try await w.request(
            "mia",
            .POST,
            "/structr/rest/share",
            #"{"project": "\#(team)", "group": "inner", "rights": "delete"}"#
        )
        #expect(reshare.status == 403)
        #expect(try await w.request("olga", .DELETE, "/structr/rest/Project/\(team)").status == 200)
        // Admins and the superuser may change and delete anything.
        let privateProject = w.ids["private"]!
        #expect(
            try await w.request("root", .PUT, "/structr/rest/Project/\(privateProject)", #"{"notes": "admin"}"#).status
                == 200
        )
        #expect(try await w.request("superuser", .DELETE, "/structr/rest/Project/\(w.ids["shared"]!)").status == 200)
        #expect(try await w.request("root", .DELETE, "/structr/rest/Project/\(privateProject)").status == 200)
        // Anonymous callers may read public objects but hold no write bits.
        #expect(try await w.request(nil, .POST, "/structr/rest/Project", #"{"name": "anon"}"#).status == 401)
    }

    @Test func escalationsAreRefused() async throws {
        let w = try await world()
        defer { Task { try? await w.server.stop() } }
        let otto = w.ids["otto"]!
        #expect(try await w.request("otto", .PUT, "/structr/rest/User/\(otto)", #"{"isAdmin": true}"#).status == 403)
        #expect(
            try await w.request("otto", .PUT, "/structr/rest/User/\(w.ids["mia"]!)", #"{"isAdmin": true}"#).status
                == 404
        )
        #expect(
            try await w.request("otto", .POST, "/structr/rest/User", #"{"name": "boss", "isAdmin": true}"#).status
                == 403
        )
        #expect(
            try await w.request("otto", .POST, "/structr/rest/ResourceAccess", #"{"signature": "Tag", "flags": 255}"#)
                .status == 403
        )
        #expect(try await w.request("otto", .GET, "/structr/rest/ResourceAccess").result == [])
        // Taking over an object needs accessControl, which the owner has and others do not.
        let team = w.ids["team"]!
        #expect(
            try await w.request("otto", .PUT, "/structr/rest/Project/\(team)", #"{"owner": "\#(otto)"}"#).status == 403
        )
        #expect(
            try await w.request(
                "otto",
                .POST,
                "/structr/rest/Project",
                #"{"name": "theirs", "owner": "\#(w.ids["olga"]!)"}"#
            ).status == 403
        )
        #expect(
            try await w.request("olga", .PUT, "/structr/rest/Project/\(team)", #"{"owner": "\#(w.ids["mia"]!)"}"#)
                .status == 200
        )
        #expect(try await w.request("olga", .PUT, "/structr/rest/Project/\(team)", #"{"notes": "gone"}"#).status == 403)
        let me = try await w.request("otto", .GET, "/structr/rest/me")
        #expect(me.result["password"] == nil)
        // A user may change its own password (last: the old one stops working).
        #expect(
            try await w.request("otto", .PUT, "/structr/rest/User/\(otto)", #"{"password": "new-pw"}"#).status == 200
        )
        let withNew = try await w.server.request(
            .GET,
            "/structr/rest/Project",
            headers: ["X-User": "otto", "X-Password": "new-pw"]
        )
        #expect(withNew.status == 200)
    }

    @Test func relatedObjectsTheCallerCannotSeeAreLeftOut() async throws {
        let w = try await world()
        defer { Task { try? await w.server.stop() } }
        let open = try await w.server.create("Tag", #"{"name": "open", "visibleToAuthenticatedUsers": true}"#)
        let hidden = try await w.server.create("Tag", #"{"name": "hidden"}"#)
        #expect(
            try await w.server.request(
                .PUT,
                "/structr/rest/Project/\(w.ids["team"]!)",
                body: #"{"tags": ["\#(open)", "\#(hidden)"]}"#
            ).status == 200
        )
        let asOtto = try await w.request("otto", .GET, "/structr/rest/Project/\(w.ids["team"]!)")
        #expect(asOtto.result["tags"]?.ids == [open])
        // Nor can a caller link what it cannot see: it is not found.
        let link = try await w.request(
            "olga",
            .POST,
            "/structr/rest/Project",
            #"{"name": "linked", "tags": ["\#(hidden)"]}"#
        )
        #expect(link.status == 422)
        #expect(link.json.tokens == ["not_found"])
    }

    @Test func resourceGrantsAreCheckedAndTheCacheFollowsChanges() async throws {
        let w = try await world()
        defer { Task { try? await w.server.stop() } }
        #expect(try await w.request("otto", .GET, "/structr/rest/Tag").status == 401)
        #expect(try await w.request("otto", .GET, "/structr/rest/Tag").json["message"] == "Access denied")
        let grant = try await w.server.create("ResourceAccess", #"{"signature": "Tag", "flags": 1}"#)
        #expect(try await w.request("otto", .GET, "/structr/rest/Tag").status == 200)
        #expect(try await w.request("otto", .POST, "/structr/rest/Tag", #"{"name": "t"}"#).status == 401)
        #expect(try await w.request(nil, .GET, "/structr/rest/Tag").status == 401)
        #expect(
            try await w.server.request(.PUT, "/structr/rest/ResourceAccess/\(grant)", body: #"{"flags": 16}"#).status
                == 200
        )
        #expect(try await w.request("otto", .GET, "/structr/rest/Tag").status == 401)
        #expect(try await w.request(nil, .GET, "/structr/rest/Tag").status == 200)
        #expect(try await w.server.request(.DELETE, "/structr/rest/ResourceAccess/\(grant)").status == 200)
        #expect(try await w.request(nil, .GET, "/structr/rest/Tag").status == 401)
        #expect(try await w.request("root", .GET, "/structr/rest/Tag").status == 200)
    }
}
