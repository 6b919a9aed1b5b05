import Foundation
import HeraldApplication
import HeraldEvents
import HeraldSchema
import HeraldScripting
import HeraldStorage
import Logging
import Testing

/// The work runner and method runner over a real SQLite file, real engines and a real hub, without HTTP.
final class RuntimeHarness: @unchecked Sendable {
    let directory: TestDirectory
    let storage: any StorageBackend
    let pool: EnginePool
    let hub = EventHub()
    let work: WorkRunner
    let methods: MethodRunner

    init(files: [String: String]? = nil) async throws {
        directory = try TestDirectory(files: files)
        let schema = try SchemaLoader(directory: directory.schema).load()
        storage = try TestDatabase.storage(directory)
        let migration = try await storage.migrate(to: schema, allowDestructive: false)
        let model = DataModel(schema: schema, hasher: BcryptPasswordHasher(cost: 4))
        _ = try await storage.write { tx in try model.loadInitialData(in: tx) }
        pool = EnginePool(configuration: .init(size: 2))
        work = WorkRunner(
            model: model,
            generation: migration.generation,
            storage: storage,
            events: hub,
            hooks: pool,
            logger: Logger(label: "test")
        )
        methods = MethodRunner(workRunner: work, pool: pool)
    }

    func close() async throws {
        await pool.shutdown()
        try storage.close()
    }

    func call(_ name: String, _ arguments: JSONValue = .object([:]), as caller: Caller = .superuser) async throws
        -> JSONValue
    {
        let method = try #require(work.model.schema.globalMethods.first { $0.name == name })
        return try await methods.call(method: method, id: nil, arguments: arguments, request: [:], caller: caller)
    }

    func user(_ name: String) async throws -> Caller {
        let entity = try await storage.read { tx in
            try tx.fetch(EntityQuery(type: "User", filter: .compare("name", .equal, .string(name)))).first
        }
        return .user(id: try #require(entity?.id), name: name, isAdmin: false)
    }
}

/// The events already delivered to a subscription, waiting briefly for stragglers.
func received(_ subscription: EventHub.Subscription, waiting: Duration = .milliseconds(1500)) async -> [ServerEvent] {
    let collector = Task {
        var collected: [ServerEvent] = []
        while let batch = await subscription.next() { collected += batch }
        return collected
    }
    try? await Task.sleep(for: waiting)
    subscription.cancel()
    return await collector.value
}

@Suite struct EventTests {
    static let schema: [String: String] = [
        "Item.json": #"{"properties": {"name": "string"}}"#,
        "Item/onCreate.js":
            "{ $.broadcastEvent('created', $.this.name); if ($.this.name === 'bad') { throw new Error('no'); } }",
        "global/send.js": "{ return $.sendEvent('note', 'hi', $.find('User', 'name', $.arguments.to)); }",
        "global/sendGroup.js":
            "{ return $.sendEvent('team', {n: 1}, $.first($.find('Group', 'name', $.arguments.group))); }",
        "global/broadcast.js": "{ $.broadcastEvent('b', 'x', $.arguments.auth, $.arguments.anon); }",
        "global/broadcastDefault.js": "{ $.broadcastEvent('b', 'default'); }",
        "global/joinAndSend.js": """
        {
            const inner = $.first($.find('Group', 'name', 'inner'));
            $.set(inner, {members: [...inner.members, $.first($.find('User', 'name', 'cid'))]});
            return $.sendEvent('team', 'welcome', $.first($.find('Group', 'name', 'outer')));
        }
        """,
        "global/many.js": "{ for (let i = 0; i < 50; i++) { $.broadcastEvent('n', String(i)); } }",
        "global/badType.js": "{ $.broadcastEvent($.arguments.type, 'x'); }",
        "global/notBoolean.js": "{ $.broadcastEvent('b', 'x', 'yes'); }",
        "initial-data.json": """
        {
          "User": [
            {"id": "00000000000000000000000000000001", "name": "ann"},
            {"id": "00000000000000000000000000000002", "name": "ben"},
            {"id": "00000000000000000000000000000003", "name": "cid"}
          ],
          "Group": [
            {"id": "000000000000000000000000000000a1", "name": "outer", "members": ["00000000000000000000000000000001", "000000000000000000000000000000a2"]},
            {"id": "000000000000000000000000000000a2", "name": "inner", "members": ["00000000000000000000000000000002", "00000000000000000000000000000001", "000000000000000000000000000000a1"]}
          ]
        }
        """,
    ]

    @Test func sendEventReachesTheUsersStreamsAndSaysWhetherAnyWill() async throws {
        let h = try await RuntimeHarness(files: Self.schema)
        let ann = try await h.user("ann")
        let first = h.hub.subscribe(ann)
        let second = h.hub.subscribe(ann)
        let ben = h.hub.subscribe(try await h.user("ben"))
        #expect(try await h.call("send", ["to": "ann"]) == true)
        #expect(try await h.call("send", ["to": "cid"]) == false)
        #expect(await received(first).map(\.data) == ["hi"])
        #expect(await received(second).map(\.type) == ["note"])
        #expect(await received(ben).isEmpty)
        try await h.close()
    }

    @Test func groupsExpandThroughNestingAndCyclesToEachUserOnce() async throws {
        let h = try await RuntimeHarness(files: Self.schema)
        let ann = h.hub.subscribe(try await h.user("ann"))
        let ben = h.hub.subscribe(try await h.user("ben"))
        let cid = h.hub.subscribe(try await h.user("cid"))
        #expect(try await h.call("sendGroup", ["group": "outer"]) == true)
        #expect(await received(ann).map(\.data) == [#"{"n":1}"#])
        #expect(await received(ben).count == 1)
        #expect(await received(cid).isEmpty)
        try await h.close()
    }

    @Test func groupMembershipIsCachedAndFollowsChanges() async throws {
        let h = try await RuntimeHarness(files: Self.schema)
        let ben = try await h.user("ben")
        var stream = h.hub.subscribe(ben)
        #expect(try await h.call("sendGroup", ["group": "outer"]) == true)
        #expect(await received(stream).count == 1)
        // Take ben out of the inner group: the next send to outer no longer reaches him.
        _ = try await h.work.update(
            "Group",
            id: "000000000000000000000000000000a2",
            ["members": ["00000000000000000000000000000001"]],
            caller: .superuser
        )
        stream = h.hub.subscribe(ben)
        #expect(try await h.call("sendGroup", ["group": "outer"]) == false)
        #expect(await received(stream).isEmpty)
        // A member added in the same transaction as the send receives it.
        let cid = h.hub.subscribe(try await h.user("cid"))
        #expect(try await h.call("joinAndSend") == true)
        #expect(await received(cid).map(\.data) == ["welcome"])
        try await h.close()
    }

    @Test func broadcastFlagsChooseTheAudience() async throws {
        let h = try await RuntimeHarness(files: Self.schema)
        func run(_ arguments: JSONValue?) async throws -> (Int, Int) {
            let user = h.hub.subscribe(try await h.user("ann"))
            let anonymous = h.hub.subscribe(.anonymous)
            if let arguments {
                _ = try await h.call("broadcast", arguments)
            } else {
                _ = try await h.call("broadcastDefault")
            }
            return (await received(user).count, await received(anonymous).count)
        }
        #expect(try await run(nil) == (1, 0))
        #expect(try await run(["auth": true, "anon": true]) == (1, 1))
        #expect(try await run(["auth": false, "anon": true]) == (0, 1))
        #expect(try await run(["auth": false, "anon": false]) == (0, 0))
        try await h.close()
    }

    @Test func aNonBooleanFlagIsATypeErrorAndSendsNothing() async throws {
        let h = try await RuntimeHarness(files: Self.schema)
        let user = h.hub.subscribe(try await h.user("ann"))
        let error = await #expect(throws: ScriptError.self) { _ = try await h.call("notBoolean") }
        #expect(error?.description.contains("authenticatedUsers must be true or false") == true)
        #expect(await received(user).isEmpty)
        try await h.close()
    }

    @Test func eventTypesThatWouldBreakTheFramingAreRefused() async throws {
        let h = try await RuntimeHarness(files: Self.schema)
        let user = h.hub.subscribe(try await h.user("ann"))
        for type in ["", "a\nid: 99", "a\rb", "x\r\n"] {
            await #expect(throws: ScriptError.self) { _ = try await h.call("badType", ["type": .string(type)]) }
        }
        #expect(await received(user).isEmpty)
        try await h.close()
    }

    @Test func eventsLeaveOnCommitAndAreDroppedOnRollback() async throws {
        let h = try await RuntimeHarness(files: Self.schema)
        let user = h.hub.subscribe(try await h.user("ann"))
        await #expect(throws: (any Error).self) {
            _ = try await h.work.create("Item", [["name": "good"], ["name": "bad"]], caller: .superuser)
        }
        _ = try await h.work.create("Item", [["name": "kept"]], caller: .superuser)
        #expect(await received(user).map(\.data) == ["kept"])
        try await h.close()
    }

    @Test func eventsArriveInOrderWithIncreasingIds() async throws {
        let h = try await RuntimeHarness(files: Self.schema)
        let user = h.hub.subscribe(try await h.user("ann"))
        _ = try await h.call("many")
        let events = await received(user)
        #expect(events.map(\.data) == (0..<50).map(String.init))
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.id < $1.id })
        try await h.close()
    }

    @Test func theExampleAppNotifiesThePostsAuthorOfAComment() async throws {
        let h = try await RuntimeHarness()
        let alice = h.hub.subscribe(try await h.user("alice"))
        let carol = h.hub.subscribe(try await h.user("carol"))
        let bob = try await h.user("bob")
        _ = try await h.work.create(
            "Comment",
            [["text": "Nice post!", "post": "9057000000000000000000000000a001", "author": .string(bob.userID!)]],
            caller: bob
        )
        let events = await received(alice)
        #expect(events.map(\.type) == ["notification"])
        let payload = try JSONValue(parsing: events.first?.data ?? "")
        #expect(payload["type"] == "new-comment")
        #expect(payload["authorName"] == "bob")
        #expect(payload["postId"] == "9057000000000000000000000000a001")
        #expect(payload["preview"] == "Nice post!")
        #expect(await received(carol).isEmpty)
        try await h.close()
    }

    @Test func theExampleAppsProgressAnnouncementAndEditingScriptsRunUnchanged() async throws {
        let h = try await RuntimeHarness()
        let bob = h.hub.subscribe(try await h.user("bob"))
        let carol = h.hub.subscribe(try await h.user("carol"))
        let alice = h.hub.subscribe(try await h.user("alice"))
        _ = try await h.call("processDataItems")
        let progress = await received(alice).filter { $0.type == "progress" }
        #expect(progress.count == 3)  // 10, 20 of 25, then the completion
        #expect((try? JSONValue(parsing: progress.last?.data ?? ""))?["complete"] == true)
        let bob2 = h.hub.subscribe(try await h.user("bob"))
        let carol2 = h.hub.subscribe(try await h.user("carol"))
        _ = try await h.call("announceSprintPlanning")
        #expect(await received(bob2).map(\.type) == ["announcement"])
        #expect(await received(carol2).map(\.type) == ["announcement"])  // through the nested Frontend group
        _ = await received(bob)
        _ = await received(carol)
        let editing = h.hub.subscribe(try await h.user("carol"))
        let method = try #require(h.work.model.schema.types["Document"]?.methods.first { $0.name == "startEditing" })
        _ = try await h.methods.call(
            method: method,
            id: "d0c00000000000000000000000000b01",
            arguments: .object([:]),
            request: [:],
            caller: try await h.user("alice")
        )
        let event = await received(editing)
        #expect(event.map(\.type) == ["editing"])
        #expect((try? JSONValue(parsing: event.first?.data ?? ""))?["userName"] == "alice")
        try await h.close()
    }

    @Test func theWireFormatSplitsEveryKindOfLineBreak() {
        let event = ServerEvent(id: 7, type: "notification", data: "one\ntwo\r\nthree\rfour")
        #expect(event.wireFormat == "id: 7\nevent: notification\ndata: one\ndata: two\ndata: three\ndata: four\n\n")
        #expect(ServerEvent(id: 1, type: "m", data: "").wireFormat == "id: 1\nevent: m\ndata: \n\n")
        #expect(!ServerEvent.isValidType("a\nb"))
        #expect(!ServerEvent.isValidType(""))
        #expect(ServerEvent.isValidType("data-update"))
    }
}
