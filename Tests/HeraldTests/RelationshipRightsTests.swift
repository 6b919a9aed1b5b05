import Foundation
import HeraldSchema
import NIOHTTP1
import Testing

/// Linking and unlinking change both objects, so both must allow it: every relationship shape,
/// written from each end, by a user who may edit only her own objects and her own user.
@Suite struct RelationshipRightsTests {
    static let files: [String: String] = [
        // one-many from Project.lead, many-many through tags, one-one through Badge.holder,
        // many-one from Task.project, and Note.project whose targets are open to readers.
        "Project.json": """
        {"properties": {"name": "string"},
         "relationships": {"lead": {"to": "User", "cardinality": "one", "inverse": "leads"},
                           "tags": {"to": "Tag", "cardinality": "many", "inverse": "projects"}}}
        """,
        "Task.json": """
        {"properties": {"name": "string"},
         "relationships": {"project": {"to": "Project", "cardinality": "one", "inverse": "tasks"}}}
        """,
        "Tag.json": #"{"properties": {"name": "string"}}"#,
        "Badge.json": """
        {"properties": {"name": "string"},
         "relationships": {"holder": {"to": "User", "cardinality": "one", "inverse": "badge", "inverseCardinality": "one"}}}
        """,
        "Note.json": """
        {"properties": {"name": "string"},
         "relationships": {"project": {"to": "Project", "cardinality": "one", "inverse": "notes", "targetLinkRight": "read"}}}
        """,
        "global/joinGroup.js": "{ $.me.groups = $.find('Group', 'name', 'staff'); }",
    ]

    struct World {
        let server: TestServer
        var ids: [String: String] = [:]
        let mallory = ["X-User": "mallory", "X-Password": "mallory-pw"]
        let olga = ["X-User": "olga", "X-Password": "olga-pw"]

        /// A PUT as mallory; returns the status.
        func put(_ type: String, _ id: String, _ body: String, as user: [String: String]? = nil) async throws -> Int {
            try await server.request(.PUT, "/structr/rest/\(type)/\(id)", body: body, headers: user ?? mallory).status
        }

        func post(_ type: String, _ body: String, as user: [String: String]? = nil) async throws -> HTTPResult {
            try await server.request(.POST, "/structr/rest/\(type)", body: body, headers: user ?? mallory)
        }

        /// Ids at `key` of an object, read as the superuser.
        func linked(_ type: String, _ id: String, _ key: String) async throws -> [String] {
            let value = try await server.get("/structr/rest/\(type)/\(id)")[key] ?? .null
            if let list = value.arrayValue { return list.compactMap { $0["id"]?.stringValue } }
            return value["id"]?.stringValue.map { [$0] } ?? []
        }
    }

    func world() async throws -> World {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        var world = World(server: server)
        for user in ["mallory", "olga"] {
            world.ids[user] = try await server.create(
                "User",
                #"{"name": "\#(user)", "password": "\#(user)-pw", "visibleToAuthenticatedUsers": true}"#
            )
        }
        world.ids["staff"] = try await server.create(
            "Group",
            #"{"name": "staff", "visibleToAuthenticatedUsers": true}"#
        )
        for signature in ["Project", "Task", "Tag", "Badge", "Note", "User", "Group"] {
            _ = try await server.create("ResourceAccess", #"{"signature": "\#(signature)", "flags": 5}"#)
            _ = try await server.create("ResourceAccess", #"{"signature": "\#(signature)/_id", "flags": 3}"#)
        }
        _ = try await server.create("ResourceAccess", #"{"signature": "joinGroup", "flags": 4}"#)
        // olga's objects, visible to every logged-in user but writable only by olga.
        for (type, name) in [
            ("Project", "olgaProject"), ("Task", "olgaTask"), ("Tag", "olgaTag"), ("Badge", "olgaBadge"),
        ] {
            let answer = try await world.post(
                type,
                #"{"name": "\#(name)", "visibleToAuthenticatedUsers": true}"#,
                as: world.olga
            )
            world.ids[name] = answer.result.arrayValue?.first?.stringValue
        }
        for (type, name) in [("Project", "myProject"), ("Task", "myTask"), ("Tag", "myTag"), ("Badge", "myBadge")] {
            world.ids[name] = try await world.post(type, #"{"name": "\#(name)"}"#).result.arrayValue?.first?.stringValue
        }
        return world
    }

    @Test func joiningAGroupNeedsWriteOnTheGroup() async throws {
        let w = try await world()
        defer { Task { try await w.server.stop() } }
        let staff = w.ids["staff"]!
        // From the user's end, over REST and from a script.
        #expect(try await w.put("User", w.ids["mallory"]!, #"{"groups": ["\#(staff)"]}"#) == 403)
        let scripted = try await w.server.request(.POST, "/structr/rest/joinGroup", body: "{}", headers: w.mallory)
        #expect(scripted.status == 403)
        // From the group's end.
        #expect(try await w.put("Group", staff, #"{"members": ["\#(w.ids["mallory"]!)"]}"#) == 403)
        #expect(try await w.linked("Group", staff, "members").isEmpty)
        // With write on the group, joining works.
        _ = try await w.server.request(
            .PUT,
            "/structr/rest/Group/\(staff)",
            body: #"{"owner": "\#(w.ids["mallory"]!)"}"#
        )
        #expect(try await w.put("User", w.ids["mallory"]!, #"{"groups": ["\#(staff)"]}"#) == 200)
        #expect(try await w.linked("Group", staff, "members") == [w.ids["mallory"]!])
    }

    @Test func oneToManyFromEitherEnd() async throws {
        let w = try await world()
        defer { Task { try await w.server.stop() } }
        // Taking over olga's project by writing one's own `leads` (the project's one-sided end changes).
        #expect(try await w.put("User", w.ids["mallory"]!, #"{"leads": ["\#(w.ids["olgaProject"]!)"]}"#) == 403)
        #expect(try await w.linked("Project", w.ids["olgaProject"]!, "lead").isEmpty)
        // Naming olga as the lead of one's own project changes olga's `leads`.
        #expect(try await w.put("Project", w.ids["myProject"]!, #"{"lead": "\#(w.ids["olga"]!)"}"#) == 403)
        // Both ends one's own: allowed.
        #expect(try await w.put("Project", w.ids["myProject"]!, #"{"lead": "\#(w.ids["mallory"]!)"}"#) == 200)
        #expect(try await w.put("User", w.ids["mallory"]!, #"{"leads": []}"#) == 200)
        #expect(try await w.linked("Project", w.ids["myProject"]!, "lead").isEmpty)
    }

    @Test func manyToOneMovesNeedTheOldHolder() async throws {
        let w = try await world()
        defer { Task { try await w.server.stop() } }
        let olgaTask = w.ids["olgaTask"]!
        // Pulling olga's task onto one's own project, from the project's end and the task's.
        #expect(try await w.put("Project", w.ids["myProject"]!, #"{"tasks": ["\#(olgaTask)"]}"#) == 403)
        #expect(try await w.put("Task", olgaTask, #"{"project": "\#(w.ids["myProject"]!)"}"#) == 403)
        // olga puts her task on her project; mallory's own task cannot be put there ...
        #expect(try await w.put("Task", olgaTask, #"{"project": "\#(w.ids["olgaProject"]!)"}"#, as: w.olga) == 200)
        #expect(try await w.put("Task", w.ids["myTask"]!, #"{"project": "\#(w.ids["olgaProject"]!)"}"#) == 403)
        // ... and olga's task cannot be moved away from olga's project onto mallory's.
        #expect(try await w.put("Project", w.ids["myProject"]!, #"{"tasks": ["\#(olgaTask)"]}"#) == 403)
        #expect(try await w.linked("Task", olgaTask, "project") == [w.ids["olgaProject"]!])
        #expect(try await w.put("Task", w.ids["myTask"]!, #"{"project": "\#(w.ids["myProject"]!)"}"#) == 200)
    }

    @Test func manyToManyFromEitherEnd() async throws {
        let w = try await world()
        defer { Task { try await w.server.stop() } }
        #expect(try await w.put("Project", w.ids["myProject"]!, #"{"tags": ["\#(w.ids["olgaTag"]!)"]}"#) == 403)
        #expect(try await w.put("Tag", w.ids["myTag"]!, #"{"projects": ["\#(w.ids["olgaProject"]!)"]}"#) == 403)
        #expect(try await w.put("Project", w.ids["myProject"]!, #"{"tags": ["\#(w.ids["myTag"]!)"]}"#) == 200)
        // Unlinking needs both too: olga may not drop mallory's tag from mallory's project's list
        // by rewriting her own tag, nor may mallory drop a link an admin made to olga's tag.
        _ = try await w.server.request(
            .PUT,
            "/structr/rest/Project/\(w.ids["myProject"]!)",
            body: #"{"tags": ["\#(w.ids["myTag"]!)", "\#(w.ids["olgaTag"]!)"]}"#
        )
        #expect(try await w.put("Project", w.ids["myProject"]!, #"{"tags": ["\#(w.ids["myTag"]!)"]}"#) == 403)
        #expect(try await w.put("Tag", w.ids["olgaTag"]!, #"{"projects": []}"#, as: w.olga) == 403)
        #expect(try await w.linked("Project", w.ids["myProject"]!, "tags").count == 2)
    }

    @Test func oneToOneFromEitherEnd() async throws {
        let w = try await world()
        defer { Task { try await w.server.stop() } }
        // Giving one's badge to olga, taking olga's badge, and creating a badge held by olga.
        #expect(try await w.put("Badge", w.ids["myBadge"]!, #"{"holder": "\#(w.ids["olga"]!)"}"#) == 403)
        #expect(try await w.put("User", w.ids["mallory"]!, #"{"badge": "\#(w.ids["olgaBadge"]!)"}"#) == 403)
        #expect(try await w.post("Badge", #"{"name": "forged", "holder": "\#(w.ids["olga"]!)"}"#).status == 403)
        // olga's badge goes to olga; mallory's own badge to mallory.
        #expect(try await w.put("Badge", w.ids["olgaBadge"]!, #"{"holder": "\#(w.ids["olga"]!)"}"#, as: w.olga) == 200)
        #expect(try await w.put("User", w.ids["mallory"]!, #"{"badge": "\#(w.ids["myBadge"]!)"}"#) == 200)
        #expect(try await w.linked("Badge", w.ids["olgaBadge"]!, "holder") == [w.ids["olga"]!])
        #expect(try await w.linked("Badge", w.ids["myBadge"]!, "holder") == [w.ids["mallory"]!])
    }

    @Test func openTargetsNeedOnlyReadButSourcesStillNeedWrite() async throws {
        let w = try await world()
        defer { Task { try await w.server.stop() } }
        // A note on olga's visible project: the note is mallory's, the project open to readers.
        let note = try await w.post("Note", #"{"name": "mine", "project": "\#(w.ids["olgaProject"]!)"}"#)
        #expect(note.status == 201)
        let olgaNote = try await w.post("Note", #"{"name": "hers", "visibleToAuthenticatedUsers": true}"#, as: w.olga)
            .result.arrayValue?.first?.stringValue
        // olga's note is a source: moving it onto mallory's project needs write on it.
        #expect(try await w.put("Project", w.ids["myProject"]!, #"{"notes": ["\#(olgaNote!)"]}"#) == 403)
        // A project mallory cannot see is not found.
        let hidden = try await w.post("Project", #"{"name": "hidden"}"#, as: w.olga).result.arrayValue?.first?
            .stringValue
        #expect(try await w.post("Note", #"{"name": "x", "project": "\#(hidden!)"}"#).status == 422)
    }
}
