import Foundation
import HeraldSchema
import Testing

@Suite struct RESTTests {
    @Test func createReturnsLocationAndIdsThenGetReturnsTheObject() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let answer = try await server.request(
            .POST,
            "/structr/rest/Project",
            body:
                #"{"name": "Apollo", "priority": 3, "status": "open", "due": "2025-03-01T10:00:00+01:00", "budget": 2.5, "meta": {"k": [1, "two"]}}"#
        )
        #expect(answer.status == 201)
        let id = try #require(answer.result.arrayValue?.first?.stringValue)
        #expect(EntityID.isValid(id))
        #expect(answer.headers["Location"].first?.hasSuffix("/structr/rest/Project/\(id)") == true)
        let project = try await server.get("/structr/rest/Project/\(id)")
        #expect(project["id"] == .string(id))
        #expect(project["type"] == "Project")
        #expect(project["name"] == "Apollo")
        #expect(project["priority"] == 3)
        #expect(project["done"] == false)
        #expect(project["due"] == "2025-03-01T09:00:00.000Z")
        #expect(project["budget"] == 2.5)
        #expect(project["meta"] == ["k": [1, "two"]])
        #expect(project["notes"] == .null)
        #expect(project["createdDate"]?.stringValue.flatMap(Timestamp.init(iso8601:)) != nil)
        #expect(project["visibleToPublicUsers"] == false)
        #expect(project["tags"] == [])
        #expect(project["lead"] == .null)
    }

    @Test func collectionEnvelopePagingAndSorting() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        for (name, priority) in [("a", 5), ("b", 1), ("c", 3), ("d", 3), ("e", 2)] {
            _ = try await server.create("Project", #"{"name": "\#(name)", "priority": \#(priority)}"#)
        }
        let all = try await server.request(
            .GET,
            "/structr/rest/Project?_sort=priority&_order=desc&_sort=name&_order=asc"
        )
        #expect(all.status == 200)
        #expect(all.json["result_count"] == 5)
        #expect(all.json["page_count"] == 1)
        #expect(all.json["query_time"]?.stringValue.flatMap(Double.init) != nil)
        #expect(all.json["serialization_time"]?.stringValue != nil)
        #expect((all.result.arrayValue ?? []).compactMap { $0["name"]?.stringValue } == ["a", "c", "d", "e", "b"])
        let page = try await server.request(.GET, "/structr/rest/Project?_sort=name&_pageSize=2&_page=2")
        #expect((page.result.arrayValue ?? []).compactMap { $0["name"]?.stringValue } == ["c", "d"])
        #expect(page.json["result_count"] == 5)
        #expect(page.json["page_count"] == 3)
        #expect(page.json["page"] == 2)
        #expect(page.json["page_size"] == 2)
        let beyond = try await server.request(.GET, "/structr/rest/Project?_pageSize=2&_page=9")
        #expect(beyond.result == [])
        #expect(try await server.request(.GET, "/structr/rest/Project?_pageSize=0").status == 400)
        #expect(try await server.request(.GET, "/structr/rest/Project?_sort=nope").status == 400)
        #expect(try await server.request(.GET, "/structr/rest/Project?_order=sideways&_sort=name").status == 400)
    }

    @Test func filtersExactEitherRangeInexactAndRelated() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let apollo = try await server.create(
            "Project",
            #"{"name": "Apollo", "priority": 1, "status": "open", "done": true, "due": "2025-01-10"}"#
        )
        let gemini = try await server.create(
            "Project",
            #"{"name": "Gemini", "priority": 5, "status": "closed", "due": "2025-02-10"}"#
        )
        let mercury = try await server.create("Project", #"{"name": "Mercury", "priority": 9, "due": "2025-03-10"}"#)
        _ = try await server.create("Task", #"{"title": "t1", "project": "\#(gemini)"}"#)
        func names(_ query: String) async throws -> Set<String> {
            let result = try await server.get("/structr/rest/Project?\(query)")
            return Set((result.arrayValue ?? []).compactMap { $0["name"]?.stringValue })
        }
        #expect(try await names("name=Apollo") == ["Apollo"])
        #expect(try await names("name=apollo") == [])
        #expect(try await names("name=Apollo;Mercury") == ["Apollo", "Mercury"])
        #expect(try await names("priority=%5B2%20TO%209%5D") == ["Gemini", "Mercury"])
        #expect(try await names("priority=%5B%20TO%205%5D") == ["Apollo", "Gemini"])
        #expect(try await names("priority=%5B6%20TO%20*%5D") == ["Mercury"])
        #expect(try await names("due=%5B2025-02-01%20TO%202025-12-31%5D") == ["Gemini", "Mercury"])
        #expect(try await names("name=ER&_inexact=1") == ["Mercury"])
        #expect(try await names("done=true") == ["Apollo"])
        #expect(try await names("status=open;closed") == ["Apollo", "Gemini"])
        #expect(try await names("status=") == ["Mercury"])
        #expect(try await names("tasks=\(try await server.get("/structr/rest/Task").ids[0])") == ["Gemini"])
        #expect(try await names("id=\(apollo)") == ["Apollo"])
        _ = mercury
        let tasks = try await server.get("/structr/rest/Task?project=\(gemini)")
        #expect(tasks.arrayValue?.count == 1)
        let unknown = try await server.request(.GET, "/structr/rest/Project?colour=red")
        #expect(unknown.status == 400)
        #expect(unknown.json.tokens == ["unknown_property"])
        #expect(try await server.request(.GET, "/structr/rest/Project?priority=high").status == 400)
        #expect(try await server.request(.GET, "/structr/rest/Task?project=nothex").status == 400)
    }

    @Test func arrayCreateIsOneTransaction() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let good = try await server.request(.POST, "/structr/rest/Tag", body: #"[{"name": "x"}, {"name": "y"}]"#)
        #expect(good.status == 201)
        #expect(good.result.arrayValue?.count == 2)
        let bad = try await server.request(
            .POST,
            "/structr/rest/Project",
            body: #"[{"name": "ok-1"}, {"name": "ok-2"}, {"priority": 1}]"#
        )
        #expect(bad.status == 422)
        #expect(bad.json.tokens == ["must_not_be_empty"])
        #expect(try await server.get("/structr/rest/Project") == [])
        let duplicateInside = try await server.request(
            .POST,
            "/structr/rest/Project",
            body: #"[{"name": "same"}, {"name": "same"}]"#
        )
        #expect(duplicateInside.status == 422)
        #expect(duplicateInside.json.tokens == ["already_taken"])
        #expect(try await server.get("/structr/rest/Project") == [])
    }

    @Test func putUpdatesOnlyTheKeysSent() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let id = try await server.create("Project", #"{"name": "Apollo", "priority": 2, "notes": "keep me"}"#)
        let before = try await server.get("/structr/rest/Project/\(id)")
        try await Task.sleep(for: .milliseconds(5))
        let answer = try await server.request(
            .PUT,
            "/structr/rest/Project/\(id)",
            body: #"{"priority": 7, "done": true}"#
        )
        #expect(answer.status == 200)
        let after = try await server.get("/structr/rest/Project/\(id)")
        #expect(after["priority"] == 7)
        #expect(after["done"] == true)
        #expect(after["notes"] == "keep me")
        #expect(after["name"] == "Apollo")
        #expect(after["createdDate"] == before["createdDate"])
        #expect(after["lastModifiedDate"] != before["lastModifiedDate"])
        let cleared = try await server.request(.PUT, "/structr/rest/Project/\(id)", body: #"{"notes": null}"#)
        #expect(cleared.status == 200)
        #expect(try await server.get("/structr/rest/Project/\(id)")["notes"] == .null)
        let refused = try await server.request(
            .PUT,
            "/structr/rest/Project/\(id)",
            body: #"{"name": "", "priority": 1}"#
        )
        #expect(refused.status == 422)
        #expect(refused.json.tokens == ["must_not_be_empty"])
        #expect(try await server.get("/structr/rest/Project/\(id)")["priority"] == 7)
    }

    @Test func relationshipsAcceptIdsListsAndObjectsAndShowBothEnds() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let lead = try await server.create("User", #"{"name": "lena", "password": "pw-lena"}"#)
        let t1 = try await server.create("Tag", #"{"name": "t1"}"#)
        let t2 = try await server.create("Tag", #"{"name": "t2"}"#)
        let p = try await server.create(
            "Project",
            #"{"name": "P", "lead": {"id": "\#(lead)"}, "tags": ["\#(t1)", {"id": "\#(t2)", "type": "Tag"}]}"#
        )
        let project = try await server.get("/structr/rest/Project/\(p)")
        #expect(project["lead"]?["id"] == .string(lead))
        #expect(project["lead"]?["name"] == "lena")
        // The link back to the project being rendered is cut short.
        #expect(project["lead"]?["leads"] == [["id": .string(p), "type": "Project", "name": "P"]])
        #expect(project["tags"]?.ids == [t1, t2])
        let user = try await server.get("/structr/rest/User/\(lead)")
        #expect(user["leads"]?.ids == [p])
        #expect(user["password"] == nil)
        let tag = try await server.get("/structr/rest/Tag/\(t1)")
        #expect(tag["projects"]?.ids == [p])

        // Replacing a list, and setting from the inverse end.
        #expect(
            try await server.request(.PUT, "/structr/rest/Project/\(p)", body: #"{"tags": ["\#(t2)"]}"#).status == 200
        )
        #expect(try await server.get("/structr/rest/Tag/\(t1)")["projects"] == [])
        let task = try await server.create("Task", #"{"title": "t"}"#)
        #expect(
            try await server.request(.PUT, "/structr/rest/Project/\(p)", body: #"{"tasks": ["\#(task)"]}"#).status
                == 200
        )
        #expect(try await server.get("/structr/rest/Task/\(task)")["project"]?["id"] == .string(p))

        // A task belongs to one project: linking it elsewhere moves it.
        let q = try await server.create("Project", #"{"name": "Q", "tasks": ["\#(task)"]}"#)
        #expect(try await server.get("/structr/rest/Project/\(p)")["tasks"] == [])
        #expect(try await server.get("/structr/rest/Task/\(task)")["project"]?["id"] == .string(q))

        // Deleting removes the links too.
        #expect(try await server.request(.DELETE, "/structr/rest/Tag/\(t2)").status == 200)
        #expect(try await server.get("/structr/rest/Project/\(p)")["tags"] == [])
        #expect(try await server.request(.GET, "/structr/rest/Tag/\(t2)").status == 404)

        // Bad references change nothing.
        let missing = try await server.request(
            .PUT,
            "/structr/rest/Project/\(p)",
            body: #"{"name": "P2", "lead": "00000000000000000000000000000000"}"#
        )
        #expect(missing.status == 422)
        #expect(missing.json.tokens == ["not_found"])
        let wrongType = try await server.request(.PUT, "/structr/rest/Project/\(p)", body: #"{"lead": "\#(task)"}"#)
        #expect(wrongType.json.tokens == ["not_found"])
        let listForOne = try await server.request(.PUT, "/structr/rest/Project/\(p)", body: #"{"lead": ["\#(lead)"]}"#)
        #expect(listForOne.json.tokens == ["must_be_single"])
        let notAReference = try await server.request(.PUT, "/structr/rest/Project/\(p)", body: #"{"tags": [42]}"#)
        #expect(notAReference.json.tokens == ["must_be_reference"])
        #expect(try await server.get("/structr/rest/Project/\(p)")["name"] == "P")
    }

    /// Structr's `_outputNestingDepth`: three levels by default, `{}` and `[]` below, links
    /// back cut to `{id, type, name}`, and the non-public views compact.
    @Test func outputNestingDepth() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let lead = try await server.create("User", #"{"name": "lena", "password": "pw-lena"}"#)
        let p = try await server.create("Project", #"{"name": "P", "lead": "\#(lead)"}"#)
        let p2 = try await server.create("Project", #"{"name": "P2", "priority": 2, "lead": "\#(lead)"}"#)
        let task = try await server.create("Task", #"{"title": "T", "project": "\#(p)"}"#)
        _ = try await server.create("Task", #"{"title": "T2", "project": "\#(p2)"}"#)
        let compactTask: JSONValue = ["id": .string(task), "type": "Task", "name": .null]

        // Task (0) → project P (1) → lead (2) → P2 (3) → P2's task and lead (4).
        let deep = try await server.get("/structr/rest/Task/\(task)")
        #expect(deep["project"]?["priority"] == 0)
        #expect(deep["project"]?["tasks"] == [compactTask])
        let leads = try #require(deep["project"]?["lead"]?["leads"]?.arrayValue)
        #expect(leads.first == ["id": .string(p), "type": "Project", "name": "P"])
        #expect(leads.last?["priority"] == 2)
        #expect(leads.last?["tasks"] == [])
        #expect(leads.last?["lead"] == [:])
        let list = try await server.get("/structr/rest/Task?title=T")
        #expect(list.arrayValue?.first == deep)

        let one = try await server.get("/structr/rest/Task/\(task)?_outputNestingDepth=1")
        #expect(one["project"]?["priority"] == 0)
        #expect(one["project"]?["lead"] == [:])
        #expect(one["project"]?["tasks"] == [])
        let two = try await server.get("/structr/rest/Task/\(task)?_outputNestingDepth=2")
        #expect(two["project"]?["lead"]?["name"] == "lena")
        #expect(two["project"]?["lead"]?["leads"] == [])
        let zero = try await server.get("/structr/rest/Task?title=T&_outputNestingDepth=0")
        #expect(zero.arrayValue?.first?["project"] == [:])
        #expect(zero.arrayValue?.first?["title"] == "T")
        let noProject = try await server.create("Task", #"{"title": "alone"}"#)
        #expect(try await server.get("/structr/rest/Task/\(noProject)?_outputNestingDepth=0")["project"] == .null)

        // all, ui and custom views render linked objects as {id, type, name}.
        for view in ["all", "ui"] {
            let shown = try await server.get("/structr/rest/Task/\(task)/\(view)")
            #expect(shown["project"] == ["id": .string(p), "type": "Project", "name": "P"], "\(view)")
        }
        #expect(try await server.get("/structr/rest/Task/\(task)/public") == deep)

        #expect(try await server.request(.GET, "/structr/rest/Task/\(task)?_outputNestingDepth=5").status == 200)
        for bad in ["6", "-1", "x"] {
            let refused = try await server.request(.GET, "/structr/rest/Task/\(task)?_outputNestingDepth=\(bad)")
            #expect(refused.status == 400)
            #expect(refused.json["message"]?.stringValue?.contains("_outputNestingDepth") == true)
        }
    }

    @Test func validationTokens() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        _ = try await server.create("Project", #"{"name": "taken"}"#)
        func tokens(_ body: String) async throws -> [String] {
            let answer = try await server.request(.POST, "/structr/rest/Project", body: body)
            #expect(answer.status == 422)
            #expect(answer.json["code"] == 422)
            #expect(answer.json["message"] == "Unable to commit transaction, validation failed")
            return answer.json.tokens
        }
        #expect(try await tokens(#"{"priority": 1}"#) == ["must_not_be_empty"])
        #expect(try await tokens(#"{"name": ""}"#) == ["must_not_be_empty"])
        #expect(try await tokens(#"{"name": "taken"}"#) == ["already_taken"])
        #expect(try await tokens(#"{"name": "n", "priority": "high"}"#) == ["must_be_integer"])
        #expect(try await tokens(#"{"name": "n", "priority": 1.5}"#) == ["must_be_integer"])
        #expect(try await tokens(#"{"name": "n", "done": "yes"}"#) == ["must_be_boolean"])
        #expect(try await tokens(#"{"name": "n", "due": "someday"}"#) == ["must_be_date"])
        #expect(try await tokens(#"{"name": "n", "budget": "lots"}"#) == ["must_be_number"])
        #expect(try await tokens(#"{"name": 5}"#) == ["must_be_string"])
        #expect(try await tokens(#"{"name": "n", "status": "pending"}"#) == ["must_be_one_of"])
        #expect(try await tokens(#"{"name": "n", "colour": "red"}"#) == ["unknown_property"])
        #expect(try await tokens(#"{"name": "n", "createdDate": "2020-01-01"}"#) == ["read_only_property"])
        #expect(try await tokens(#"{"name": "n", "id": "0123456789abcdef0123456789abcdef"}"#) == ["read_only_property"])
        #expect(try await tokens(#"{"name": "n", "type": "Task"}"#) == ["read_only_property"])
        let errors = try await server.request(.POST, "/structr/rest/Project", body: #"{"priority": "x", "colour": 1}"#)
        #expect(Set(errors.json.tokens) == ["must_be_integer", "unknown_property", "must_not_be_empty"])
        #expect(errors.json["errors"]?.arrayValue?.first?["type"] == "Project")
        #expect(try await server.get("/structr/rest/Project").arrayValue?.count == 1)
    }

    @Test func httpErrors() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema)) { $0.maxBodySize = 1024 }
        defer { Task { try? await server.stop() } }
        let malformed = try await server.request(
            .POST,
            "/structr/rest/Project",
            body: "{\"name\": \"x\",\n \"priority\": }"
        )
        #expect(malformed.status == 400)
        #expect(malformed.json["code"] == 400)
        #expect(malformed.json["message"]?.stringValue?.contains("line 2, column 14") == true)
        #expect(try await server.request(.POST, "/structr/rest/Project", body: "[1]").status == 400)
        #expect(try await server.request(.POST, "/structr/rest/Project", body: "\"text\"").status == 400)
        #expect(
            try await server.request(.PUT, "/structr/rest/Project/\(EntityID.generate())", body: "{}").status == 404
        )

        let unknownType = try await server.request(.GET, "/structr/rest/Spaceship")
        #expect(unknownType.status == 404)
        #expect(unknownType.json["message"] == "No type or global method named Spaceship")
        #expect(try await server.request(.GET, "/structr/rest/Project/\(EntityID.generate())").status == 404)
        #expect(try await server.request(.GET, "/structr/rest/Project/not-an-id").status == 404)
        #expect(try await server.request(.DELETE, "/structr/rest/Project/\(EntityID.generate())").status == 404)
        #expect(try await server.request(.GET, "/nowhere").json["code"] == 404)
        #expect(try await server.request(.GET, "/structr/rest").status == 404)

        let wrongMethod = try await server.request(.DELETE, "/structr/rest/Project")
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.headers["Allow"].first == "GET, POST, PATCH")
        let wrongEntityMethod = try await server.request(
            .POST,
            "/structr/rest/Project/\(EntityID.generate())",
            body: "{}"
        )
        #expect(wrongEntityMethod.status == 405)
        #expect(wrongEntityMethod.headers["Allow"].first == "GET, PUT, DELETE")

        let large = "{\"name\": \"" + String(repeating: "x", count: 2000) + "\"}"
        let tooLarge = try await server.request(.POST, "/structr/rest/Project", body: large)
        #expect(tooLarge.status == 413)
        #expect(tooLarge.json["code"] == 413)
        #expect(try await server.get("/structr/rest/Project") == [])
    }

    @Test func identityAndResourceGrants() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        _ = try await server.create("User", #"{"name": "root", "password": "root-pw", "isAdmin": true}"#)
        _ = try await server.create("User", #"{"name": "joe", "password": "joe-pw"}"#)

        let anonymous = try await server.request(.GET, "/structr/rest/Project", headers: [:])
        #expect(anonymous.status == 401)
        #expect(anonymous.json["message"] == "Access denied")
        let wrong = try await server.request(
            .GET,
            "/structr/rest/Project",
            headers: ["X-User": "superuser", "X-Password": "nope"]
        )
        #expect(wrong.status == 401)
        let unknownUser = try await server.request(
            .GET,
            "/structr/rest/Project",
            headers: ["X-User": "ghost", "X-Password": "x"]
        )
        #expect(unknownUser.status == 401)
        #expect(unknownUser.json["message"] == wrong.json["message"])
        let joe = try await server.request(
            .GET,
            "/structr/rest/Project",
            headers: ["X-User": "joe", "X-Password": "joe-pw"]
        )
        #expect(joe.status == 401)
        let admin = try await server.request(
            .POST,
            "/structr/rest/Project",
            body: #"{"name": "mine"}"#,
            headers: ["X-User": "root", "X-Password": "root-pw"]
        )
        #expect(admin.status == 201)
        let id = try #require(admin.result.arrayValue?.first?.stringValue)
        let project = try await server.get("/structr/rest/Project/\(id)")
        #expect(project["owner"]?["name"] == "root")

        let users = try await server.get("/structr/rest/User")
        #expect(users.arrayValue?.allSatisfy { $0["password"] == nil } == true)
    }

    @Test func superuserWithoutPasswordCannotAuthenticate() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema)) { $0.superuserPassword = nil }
        defer { Task { try? await server.stop() } }
        for password in ["", "test-secret", "null"] {
            let answer = try await server.request(
                .GET,
                "/structr/rest/Project",
                headers: ["X-User": "superuser", "X-Password": password]
            )
            #expect(answer.status == 401)
        }
    }

    @Test func schemaListing() async throws {
        let server = try await TestServer.start(try TestDirectory())
        defer { Task { try? await server.stop() } }
        let listing = try await server.get("/structr/rest/_schema")
        let comment = (listing["types"]?.arrayValue ?? []).first { $0["name"] == "Comment" }
        #expect(comment?["methods"]?.arrayValue?.first?["lifecycle"] == "afterCreate")
        #expect(comment?["methods"]?.arrayValue?.first?["file"] == "Comment/afterCreate.js")
        #expect((listing["globalMethods"]?.arrayValue ?? []).contains { $0["name"] == "processDataItems" })
    }
}
