import AsyncHTTPClient
import Foundation
import HeraldApplication
import HeraldSchema
import HeraldServer
import HeraldStorage
import NIOCore
import Testing

@Suite struct PersistenceTests {
    @Test func dataSurvivesARestart() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let first = try await TestServer.start(directory)
        let tag = try await first.create("Tag", #"{"name": "t"}"#)
        let id = try await first.create("Project", #"{"name": "Durable", "meta": {"x": 1}, "tags": ["\#(tag)"]}"#)
        try await first.stop()

        let second = try await TestServer.start(directory)
        let project = try await second.get("/structr/rest/Project/\(id)")
        #expect(project["name"] == "Durable")
        #expect(project["meta"] == ["x": 1])
        #expect(project["tags"]?.ids == [tag])
        try await second.stop()
    }

    @Test func passwordsAreStoredOnlyAsBcryptHashes() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let server = try await TestServer.start(directory)
        let id = try await server.create("User", #"{"name": "hash-me", "password": "plain-text-pw"}"#)
        try await server.stop()

        let schema = try SchemaLoader(directory: directory.schema).load()
        let storage = try TestDatabase.storage(directory)
        _ = try await storage.migrate(to: schema, allowDestructive: false)
        let stored = try await storage.read { tx in try tx.fetch(type: "User", id: id) }
        try storage.close()
        let hash = try #require(stored?.values["password"]?.stringValue)
        #expect(hash.hasPrefix("$2"))
        #expect(!hash.contains("plain-text-pw"))
        #expect(BcryptPasswordHasher(cost: 4).verify("plain-text-pw", hash: hash))
    }

    @Test func anAddedPropertyMigratesAndKeepsRows() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let first = try await TestServer.start(directory)
        let id = try await first.create("Tag", #"{"name": "old"}"#)
        try await first.stop()

        try directory.write([
            "Tag.json":
                #"{"properties": {"name": {"type": "string", "indexed": true}, "colour": {"type": "string", "default": "grey"}, "weight": "number"}}"#,
            "Label.json":
                #"{"properties": {"text": "string"}, "relationships": {"tag": {"to": "Tag", "cardinality": "one", "inverse": "labels"}}}"#,
        ])
        let second = try await TestServer.start(directory)
        let tag = try await second.get("/structr/rest/Tag/\(id)")
        #expect(tag["name"] == "old")
        #expect(tag["colour"] == "grey")
        #expect(tag["weight"] == .null)
        #expect(tag["labels"] == [])
        _ = try await second.create("Label", #"{"text": "l", "tag": "\#(id)"}"#)
        #expect(try await second.get("/structr/rest/Tag?name=old").ids == [id])
        try await second.stop()
    }

    @Test func aDestructiveChangeIsRefusedAndChangesNothing() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let first = try await TestServer.start(directory)
        let id = try await first.create("Project", #"{"name": "Keep", "notes": "precious", "priority": 4}"#)
        try await first.stop()

        // Removing a property.
        let original = projectSchema["Project.json"]!
        try directory.write([
            "Project.json": original.replacingOccurrences(of: #""notes": "string""#, with: #""extra": "string""#)
        ])
        await #expect(throws: DestructiveMigrationError.self) { _ = try await TestServer.start(directory) }
        // Retyping one.
        try directory.write([
            "Project.json": original.replacingOccurrences(of: #""notes": "string""#, with: #""notes": "integer""#)
        ])
        do {
            _ = try await TestServer.start(directory)
            Issue.record("a retyped property was accepted")
        } catch let error as DestructiveMigrationError {
            #expect(error.changes == ["retype property Project.notes from string to integer (1 values)"])
        }
        // Removing a type that other types point to.
        try directory.remove("Task.json")
        await #expect(throws: DestructiveMigrationError.self) { _ = try await TestServer.start(directory) }
        try directory.write(projectSchema)

        let again = try await TestServer.start(directory)
        let project = try await again.get("/structr/rest/Project/\(id)")
        #expect(project["notes"] == "precious")
        #expect(project["priority"] == 4)
        // The refused attempt added nothing either.
        #expect(project["extra"] == nil)
        try await again.stop()
    }

    @Test func aDestructiveChangeAppliesWhenAllowed() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let first = try await TestServer.start(directory)
        let id = try await first.create("Project", #"{"name": "Keep", "notes": "gone soon"}"#)
        try await first.stop()

        try directory.write([
            "Project.json": projectSchema["Project.json"]!.replacingOccurrences(
                of: #""notes": "string""#,
                with: #""notes": "integer""#
            )
        ])
        let second = try await TestServer.start(directory) { $0.allowDestructiveMigrations = true }
        let project = try await second.get("/structr/rest/Project/\(id)")
        #expect(project["name"] == "Keep")
        #expect(project["notes"] == .null)
        #expect(try await second.request(.PUT, "/structr/rest/Project/\(id)", body: #"{"notes": 12}"#).status == 200)
        try await second.stop()
    }

    @Test func makingAPropertyUniqueOverDuplicatesIsRefusedClearly() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let first = try await TestServer.start(directory)
        _ = try await first.create("Tag", #"{"name": "dup"}"#)
        _ = try await first.create("Tag", #"{"name": "dup"}"#)
        try await first.stop()
        try directory.write(["Tag.json": #"{"properties": {"name": {"type": "string", "unique": true}}}"#])
        do {
            _ = try await TestServer.start(directory)
            Issue.record("unique index over duplicates was accepted")
        } catch let error as MigrationError {
            #expect(error.message.contains("Tag.name"))
        }
        try directory.write(projectSchema)
        let again = try await TestServer.start(directory)
        #expect(try await again.get("/structr/rest/Tag").arrayValue?.count == 2)
        try await again.stop()
    }

    @Test func initialDataIsLoadedOnceIntoAnEmptyDatabase() async throws {
        let directory = try TestDirectory()
        let first = try await TestServer.start(directory)
        let users = try await first.get("/structr/rest/User?_sort=name")
        #expect((users.arrayValue ?? []).compactMap { $0["name"]?.stringValue } == ["admin", "alice", "bob", "carol"])
        let engineering = try await first.get("/structr/rest/Group?name=Engineering")
        #expect(
            engineering.arrayValue?.first?["members"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == [
                "bob", "Frontend",
            ]
        )
        let post = try await first.get("/structr/rest/Post")
        #expect(post.arrayValue?.first?["author"]?["name"] == "alice")
        let carol = try #require(users.arrayValue?.first { $0["name"] == "carol" }?["id"]?.stringValue)
        #expect(try await first.request(.DELETE, "/structr/rest/User/\(carol)").status == 200)
        // The example admin logs in with the documented password.
        let admin = try await first.request(
            .GET,
            "/structr/rest/Post",
            headers: ["X-User": "admin", "X-Password": "herald-demo"]
        )
        #expect(admin.status == 200)
        try await first.stop()

        let second = try await TestServer.start(directory)
        let after = try await second.get("/structr/rest/User")
        #expect(after.arrayValue?.count == 3)
        #expect(try await second.get("/structr/rest/Group?name=Frontend").arrayValue?.first?["members"] == [])
        try await second.stop()
    }
}

@Suite struct ConcurrencyTests {
    @Test func concurrentCreatesAllLand() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<60 {
                group.addTask { _ = try await server.create("Tag", #"{"name": "tag-\#(i)"}"#) }
            }
            try await group.waitForAll()
        }
        let answer = try await server.request(.GET, "/structr/rest/Tag?_pageSize=1")
        #expect(answer.json["result_count"] == 60)
    }

    @Test func concurrentPartialUpdatesDoNotLoseEachOther() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let tags = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<20 { group.addTask { try await server.create("Tag", #"{"name": "t\#(i)"}"#) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let id = try await server.create("Project", #"{"name": "Busy"}"#)
        let fields = [
            #""priority": 9"#, #""done": true"#, #""notes": "n""#, #""budget": 1.5"#, #""status": "open""#,
            #""due": "2030-01-01""#,
        ]
        try await withThrowingTaskGroup(of: Int.self) { group in
            for field in fields {
                group.addTask {
                    try await server.request(.PUT, "/structr/rest/Project/\(id)", body: "{\(field)}").status
                }
            }
            for try await status in group { #expect(status == 200) }
        }
        let project = try await server.get("/structr/rest/Project/\(id)")
        #expect(project["priority"] == 9)
        #expect(project["done"] == true)
        #expect(project["notes"] == "n")
        #expect(project["budget"] == 1.5)
        #expect(project["status"] == "open")
        #expect(project["due"] == "2030-01-01T00:00:00.000Z")
        _ = tags
    }

    @Test func racingForAUniqueValueHasOneWinner() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let statuses = try await withThrowingTaskGroup(of: HTTPResult.self) { group in
            for _ in 0..<16 {
                group.addTask { try await server.request(.POST, "/structr/rest/Project", body: #"{"name": "Only"}"#) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.filter { $0.status == 201 }.count == 1)
        #expect(statuses.filter { $0.status == 422 && $0.json.tokens == ["already_taken"] }.count == 15)
        #expect(try await server.get("/structr/rest/Project").arrayValue?.count == 1)
    }
}

@Suite struct ShutdownTests {
    @Test func aRequestInFlightFinishesDuringGracefulShutdown() async throws {
        let directory = try TestDirectory(
            files: projectSchema.merging([
                "global/slowCreate.js":
                    "{ let s = Date.now(); while (Date.now() - s < 2500) {} $.create('Tag', {name: 'late'}); return 'done'; }"
            ]) { $1 }
        )
        let server = try await TestServer.start(directory)
        let response = Task { try await server.request(.POST, "/structr/rest/slowCreate") }
        // The method is running (it runs for 2.5 s) when the shutdown begins.
        try await Task.sleep(for: .seconds(1))
        let stopping = Task { try await server.stop() }
        let answer = try await response.value
        #expect(answer.status == 200)
        #expect(answer.result == "done")
        try await stopping.value

        let again = try await TestServer.start(directory)
        #expect(try await again.get("/structr/rest/Tag").arrayValue?.compactMap { $0["name"]?.stringValue } == ["late"])
        try await again.stop()
    }
}
