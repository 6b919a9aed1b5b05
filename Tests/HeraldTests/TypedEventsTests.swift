import Foundation
import HeraldEvents
import HeraldSchema
import HeraldScripting
import HeraldStorage
import Testing

/// Loads a schema folder holding only `file` with `json`, which must be refused naming `field`.
func expectRefused(
    _ file: String,
    _ json: String,
    field: String?,
    message: String,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let directory = try TestDirectory(files: [file: json])
    do {
        _ = try SchemaLoader(directory: directory.schema).load()
        Issue.record("\(json) was accepted", sourceLocation: sourceLocation)
    } catch {
        #expect(error.file == file, sourceLocation: sourceLocation)
        #expect(error.field == field, "\(error)", sourceLocation: sourceLocation)
        #expect(error.message.contains(message), "\(error)", sourceLocation: sourceLocation)
    }
}

/// Declared events (`events.json`), checked against their JSON Schema when raised.
@Suite struct DeclaredEventTests {
    static let events = """
        {
          "note": {
            "description": "A note for someone.",
            "schema": {
              "type": "object",
              "required": ["postId", "count"],
              "properties": {
                "postId": {"type": "string", "pattern": "^p[0-9]+$"},
                "count": {"type": "integer", "minimum": 0, "maximum": 10},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                "kind": {"enum": ["a", "b"]}
              },
              "additionalProperties": false
            }
          },
          "text": {"schema": {"type": "string", "maxLength": 5}}
        }
        """

    static let files: [String: String] = [
        "events.json": events,
        "global/send.js": "{ return $.sendEvent($.arguments.type, $.arguments.message, $.me); }",
        "global/broadcast.js": "{ $.broadcastEvent($.arguments.type, $.arguments.message); return 'sent'; }",
        "global/sendText.js": "{ $.broadcastEvent($.arguments.type, JSON.stringify($.arguments.message)); }",
        "initial-data.json": """
        {"User": [{"name": "joe", "password": "joe-pw"}],
         "ResourceAccess": [{"signature": "_eventSource", "flags": 1}, {"signature": "send", "flags": 4},
                            {"signature": "broadcast", "flags": 4}, {"signature": "sendText", "flags": 4},
                            {"signature": "User", "flags": 4}]}
        """,
    ]

    static let joe = ["X-User": "joe", "X-Password": "joe-pw"]

    func call(_ server: TestServer, _ method: String, _ body: String) async throws -> HTTPResult {
        try await server.request(.POST, "/structr/rest/\(method)", body: body, headers: Self.joe)
    }

    @Test func aWrongPayloadFailsTheScriptNamingTheEventAndTheFieldAndSendsNothing() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        let stream = try await EventStream(server, headers: Self.joe)
        defer { stream.close() }

        let cases: [(String, String)] = [
            (#"{"postId": 7, "count": 1}"#, "message.postId: expected string, got integer"),
            (#"{"postId": "x1", "count": 1}"#, "message.postId: does not match the pattern"),
            (#"{"postId": "p1"}"#, "message.count: is required"),
            (#"{"postId": "p1", "count": 11}"#, "message.count: must be at most 10"),
            (#"{"postId": "p1", "count": 1.5}"#, "message.count: expected integer, got number"),
            (#"{"postId": "p1", "count": 1, "tags": ["a", 2]}"#, "message.tags[1]: expected string"),
            (#"{"postId": "p1", "count": 1, "tags": ["a", "b", "c"]}"#, "message.tags: allows at most 2 items"),
            (#"{"postId": "p1", "count": 1, "kind": "c"}"#, "message.kind: must be one of"),
            (#"{"postId": "p1", "count": 1, "extra": true}"#, "message.extra: is not a declared member"),
            (#"[1]"#, "message: expected object, got array"),
        ]
        for (message, reason) in cases {
            let answer = try await call(server, "send", #"{"type": "note", "message": \#(message)}"#)
            #expect(answer.status == 422, "\(message): \(answer.text)")
            #expect(answer.text.contains("'note'"), "\(answer.text)")
            #expect(answer.text.contains(reason), "\(message): \(answer.text)")
        }
        // A string message is read as JSON: a hook that sends JSON.stringify(...) is checked too.
        let stringified = try await call(server, "sendText", #"{"type": "note", "message": {"postId": 3, "count": 1}}"#)
        #expect(stringified.status == 422)
        #expect(stringified.text.contains("message.postId: expected string"), "\(stringified.text)")
        // A string schema takes a plain string; too long is refused.
        #expect(try await call(server, "broadcast", #"{"type": "text", "message": "hello"}"#).status == 200)
        let long = try await call(server, "broadcast", #"{"type": "text", "message": "hello!"}"#)
        #expect(long.status == 422 && long.text.contains("allows at most 5 characters"), "\(long.text)")

        // The good ones go out; an undeclared type still works (Structr compatibility).
        let good = try await call(server, "send", #"{"type": "note", "message": {"postId": "p1", "count": 2}}"#)
        #expect(good.status == 200, "\(good.text)")
        #expect(try await call(server, "broadcast", #"{"type": "free", "message": "anything"}"#).status == 200)
        #expect(try await stream.waitFor("event: free"))
        let text = stream.text
        #expect(text.contains(#"data: {"postId":"p1","count":2}"#))
        #expect(text.contains("data: hello\n"))
        // Only the three accepted events reached the stream: the refused ones were never sent.
        #expect(eventIDs(text).count == 3, "\(text)")
    }

    @Test func aServerThatRequiresDeclarationsRefusesUndeclaredTypes() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files)) {
            $0.requireDeclaredEvents = true
        }
        defer { Task { try? await server.stop() } }
        let free = try await call(server, "broadcast", #"{"type": "free", "message": "anything"}"#)
        #expect(free.status == 422)
        #expect(free.text.contains("the event type 'free' is not declared in events.json"), "\(free.text)")
        #expect(try await call(server, "broadcast", #"{"type": "text", "message": "ok"}"#).status == 200)
        // Writes without events are not affected.
        #expect(try await server.request(.POST, "/structr/rest/User", body: #"{"name": "ann"}"#).status == 201)
    }

    @Test func declarationsReloadAndABrokenFileIsRefusedWithItsFieldWhileTheOldOnesServe() async throws {
        let directory = try TestDirectory(files: Self.files)
        let server = try await TestServer.start(directory) { $0.schemaReloadInterval = 100 }
        defer { Task { try? await server.stop() } }
        #expect(try await call(server, "broadcast", #"{"type": "text", "message": "toolong"}"#).status == 422)

        try directory.write(["events.json": #"{"text": {"schema": {"type": "string", "maxLenght": 3}}}"#])
        #expect(
            try await eventually(20) { try await server.get("/structr/rest/_schema")["status"]?["refused"] != .null }
        )
        let refused = try #require(try await server.get("/structr/rest/_schema")["status"]?["refused"])
        #expect(refused["file"] == "events.json")
        #expect(refused["field"] == "text.schema.maxLenght")
        #expect(refused["message"]?.stringValue?.contains("unsupported JSON Schema keyword 'maxLenght'") == true)
        // The last good declarations keep serving.
        #expect(try await call(server, "broadcast", #"{"type": "text", "message": "toolong"}"#).status == 422)

        try directory.write(["events.json": #"{"text": {"schema": {"type": "string", "maxLength": 10}}}"#])
        #expect(
            try await eventually(20) {
                try await call(server, "broadcast", #"{"type": "text", "message": "toolong"}"#).status == 200
            }
        )
        // The declaration of note is gone with the edit: anything goes for it now.
        #expect(try await call(server, "send", #"{"type": "note", "message": 1}"#).status == 200)
    }

    @Test(arguments: [
        (#"[]"#, nil as String?, "must be an object of event names"),
        (#"{"a": 1}"#, "a", "must be {"),
        (#"{"a": {"schema": {}, "descripton": "x"}}"#, "a.descripton", "unknown key"),
        (#"{"a": {"description": "x"}}"#, "a.schema", "is required"),
        (#"{"a": {"schema": {"type": "text"}}}"#, "a.schema.type", "a type is one of"),
        (
            #"{"a": {"schema": {"properties": {"b": {"minimum": "1"}}}}}"#, "a.schema.properties.b.minimum",
            "is a number"
        ),
        (#"{"a": {"schema": {"pattern": "("}}}"#, "a.schema.pattern", "regular expression"),
        (##"{"a": {"schema": {"$ref": "#/x"}}}"##, "a.schema.$ref", "unsupported JSON Schema keyword"),
        (#"{"a": {"schema": {"anyOf": []}}}"#, "a.schema.anyOf", "non-empty list"),
    ])
    func badDeclarationsNameTheirFileAndField(json: String, field: String?, message: String) throws {
        try expectRefused("events.json", json, field: field, message: message)
    }

    @Test func schemasCheckTheirKeywords() throws {
        func schema(_ json: String) throws -> JSONSchema {
            try JSONSchema(parsing: try JSONValue(parsing: json), path: "s")
        }
        func accepts(_ s: JSONSchema, _ value: String) throws -> Bool {
            (try? s.validate(try JSONValue(parsing: value))) != nil
        }
        let number = try schema(#"{"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}"#)
        #expect(try accepts(number, "0.5") && !accepts(number, "0") && !accepts(number, "1"))
        let integer = try schema(#"{"type": "integer"}"#)
        #expect(try accepts(integer, "2") && accepts(integer, "2.0") && !accepts(integer, "2.5"))
        let nullable = try schema(#"{"type": ["string", "null"], "minLength": 2}"#)
        #expect(try accepts(nullable, "null") && accepts(nullable, #""ab""#) && !accepts(nullable, #""a""#))
        let oneOf = try schema(#"{"oneOf": [{"type": "integer"}, {"type": "number"}]}"#)
        #expect(try accepts(oneOf, "1.5") && !accepts(oneOf, "1"))
        let anyOf = try schema(#"{"anyOf": [{"const": 1}, {"type": "string"}]}"#)
        #expect(try accepts(anyOf, "1.0") && accepts(anyOf, #""x""#) && !accepts(anyOf, "2"))
        let allOf = try schema(#"{"allOf": [{"minimum": 1}, {"maximum": 3}]}"#)
        #expect(try accepts(allOf, "2") && !accepts(allOf, "4"))
        let map = try schema(
            #"{"type": "object", "additionalProperties": {"type": "boolean"}, "properties": {"n": {}}}"#
        )
        #expect(try accepts(map, #"{"n": 1, "a": true}"#) && !accepts(map, #"{"a": 1}"#))
        let never = try schema("false")
        #expect(try !accepts(never, "1"))
        let items = try schema(#"{"type": "array", "minItems": 1}"#)
        #expect(try !accepts(items, "[]") && accepts(items, "[null]"))
    }
}

/// Channels: `?channels=`, `$.publish` and who may subscribe (`channels.json`).
@Suite struct ChannelTests {
    static let files: [String: String] = [
        "channels.json": """
        {"chat:*": {"subscribe": "authenticated"}, "news": {"subscribe": "public"},
         "team:*": {"subscribe": "inTeam"}, "team:open": {"subscribe": "public"}}
        """,
        "events.json": #"{"line": {"schema": {"type": "object", "required": ["text"]}}}"#,
        "global/inTeam.js": "{ return $.me != null && $.me.name === $.arguments.channel.substring(5); }",
        "global/say.js": "{ $.publish($.arguments.channel, 'line', {text: $.arguments.text}); return 'ok'; }",
        "global/sayRaw.js": "{ $.publish($.arguments.channel, 'line', $.arguments.message); }",
        "initial-data.json": """
        {"User": [{"name": "joe", "password": "joe-pw"}, {"name": "ann", "password": "ann-pw"}],
         "ResourceAccess": [{"signature": "_eventSource", "flags": 17}, {"signature": "say", "flags": 4},
                            {"signature": "sayRaw", "flags": 4}]}
        """,
    ]

    static let joe = ["X-User": "joe", "X-Password": "joe-pw"]
    static let ann = ["X-User": "ann", "X-Password": "ann-pw"]

    func say(_ server: TestServer, _ channel: String, _ text: String) async throws -> HTTPResult {
        try await server.request(
            .POST,
            "/structr/rest/say",
            body: #"{"channel": "\#(channel)", "text": "\#(text)"}"#,
            headers: Self.joe
        )
    }

    @Test(arguments: TestTransport.allCases) func aStreamGetsThePublishesOfItsChannelsOnly(
        transport: TestTransport
    ) async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files), transport: transport)
        defer { Task { try? await server.stop() } }
        let both = try await EventStream(server, headers: Self.joe, path: "/structr/EventSource?channels=chat:42,news")
        let other = try await EventStream(server, headers: Self.ann, path: "/structr/EventSource?channels=chat:43")
        let plain = try await EventStream(server, headers: Self.ann)
        let anonymous = try await EventStream(server, headers: [:], path: "/structr/EventSource?channels=news")
        defer { for stream in [both, other, plain, anonymous] { stream.close() } }
        #expect([both, other, plain, anonymous].allSatisfy { $0.status == 200 })

        #expect(try await say(server, "chat:42", "for 42").status == 200)
        #expect(try await say(server, "news", "headline").status == 200)
        #expect(try await say(server, "chat:43", "for 43").status == 200)
        #expect(try await both.waitFor("headline"))
        #expect(try await other.waitFor("for 43"))
        #expect(try await anonymous.waitFor("headline"))
        try await Task.sleep(for: .milliseconds(200))
        #expect(both.text.contains(#"data: {"text":"for 42"}"#))
        #expect(!both.text.contains("for 43"))
        #expect(!other.text.contains("for 42") && !other.text.contains("headline"))
        #expect(!anonymous.text.contains("for 4"))
        #expect(!plain.text.contains("event: line"), "a stream without channels gets no channel events")
    }

    @Test func undeclaredOrDeniedChannelsAnswer403BeforeTheStreamOpens() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        func open(_ channels: String, _ headers: [String: String]) async throws -> HTTPResult {
            try await server.request(.GET, "/structr/EventSource?channels=\(channels)", headers: headers)
        }
        let undeclared = try await open("chat:1,secret", Self.joe)
        #expect(undeclared.status == 403)
        #expect(undeclared.headers["Content-Type"].first?.hasPrefix("application/json") == true)
        #expect(
            undeclared.text.contains("No pattern in channels.json matches the channel 'secret'"),
            "\(undeclared.text)"
        )
        let anonymousChat = try await open("chat:1", [:])
        #expect(anonymousChat.status == 403 && anonymousChat.text.contains("signed-in"), "\(anonymousChat.text)")
        // The method decides: team:joe is joe's, not ann's; the exact team:open beats team:*.
        let denied = try await open("team:joe", Self.ann)
        #expect(denied.status == 403 && denied.text.contains("inTeam said no"), "\(denied.text)")
        #expect(try await open("team:joe", [:]).status == 403)
        #expect(try await open("bad%20name", Self.joe).status == 400)
        // HEAD answers as GET would, channel checks included.
        let head = try await server.request(.HEAD, "/structr/EventSource?channels=secret", headers: Self.joe)
        #expect(head.status == 403)
        #expect(try await server.request(.HEAD, "/structr/EventSource?channels=news", headers: Self.joe).status == 200)
        let tooMany = (0..<65).map { "chat:\($0)" }.joined(separator: ",")
        #expect(try await open(tooMany, Self.joe).status == 400)

        let allowed = try await EventStream(server, headers: Self.joe, path: "/structr/EventSource?channels=team:joe")
        let open = try await EventStream(server, headers: Self.ann, path: "/structr/EventSource?channels=team:open")
        defer { for stream in [allowed, open] { stream.close() } }
        #expect(allowed.status == 200 && open.status == 200)
        #expect(try await say(server, "team:joe", "hi team").status == 200)
        #expect(try await allowed.waitFor("hi team"))
    }

    @Test func publishRefusesUndeclaredChannelsBadNamesAndBadPayloads() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        let undeclared = try await say(server, "secret", "x")
        #expect(undeclared.status == 422, "\(undeclared.text)")
        #expect(undeclared.text.contains("no pattern in schema/channels.json matches the channel 'secret'"))
        let badName = try await say(server, "a b", "x")
        #expect(badName.status == 422 && badName.text.contains("is not a channel name"), "\(badName.text)")
        let badPayload = try await server.request(
            .POST,
            "/structr/rest/sayRaw",
            body: #"{"channel": "news", "message": {"txt": 1}}"#,
            headers: Self.joe
        )
        #expect(badPayload.status == 422 && badPayload.text.contains("message.text: is required"), "\(badPayload.text)")
    }

    @Test func aReconnectReplaysWhatItsChannelsMissedAndNothingElse() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.files))
        defer { Task { try? await server.stop() } }
        let first = try await EventStream(server, headers: Self.joe, path: "/structr/EventSource?channels=chat:1")
        #expect(try await say(server, "chat:1", "one").status == 200)
        #expect(try await first.waitFor("one"))
        let last = try #require(eventIDs(first.text).last)
        first.close()
        #expect(try await say(server, "chat:1", "two").status == 200)
        #expect(try await say(server, "chat:2", "elsewhere").status == 200)
        #expect(try await say(server, "chat:1", "three").status == 200)

        let again = try await EventStream(
            server,
            headers: Self.joe.merging(["Last-Event-ID": "\(last)"]) { $1 },
            path: "/structr/EventSource?channels=chat:1"
        )
        defer { again.close() }
        #expect(try await again.waitFor("three"))
        #expect(again.text.contains("two"))
        #expect(!again.text.contains("elsewhere") && !again.text.contains("one"))
        // The same position with other channels replays theirs instead.
        let other = try await EventStream(
            server,
            headers: Self.joe.merging(["Last-Event-ID": "\(last)"]) { $1 },
            path: "/structr/EventSource?channels=chat:2"
        )
        defer { other.close() }
        #expect(try await other.waitFor("elsewhere"))
        #expect(!other.text.contains("two"))
    }

    @Test(arguments: [
        (#"{"a b": {"subscribe": "public"}}"#, "a b", "a pattern is a channel name"),
        (#"{"a*b": {"subscribe": "public"}}"#, "a*b", "a pattern is a channel name"),
        (#"{"a": {"subscribe": "everyone"}}"#, "a.subscribe", "no schema/global/everyone.js"),
        (#"{"a": {"subscribe": "public", "publish": "x"}}"#, "a.publish", "unknown key"),
        (#"{"a": "public"}"#, "a", "must be {"),
    ])
    func badChannelRulesNameTheirFileAndField(json: String, field: String, message: String) throws {
        try expectRefused("channels.json", json, field: field, message: message)
    }

    @Test func rulesMatchExactNamesBeforeTheLongestPrefix() {
        let rules = ChannelRules([
            ChannelRule(pattern: "*", subscribe: .authenticated),
            ChannelRule(pattern: "team:*", subscribe: .method("inTeam")),
            ChannelRule(pattern: "team:a*", subscribe: .public),
            ChannelRule(pattern: "team:open", subscribe: .public),
        ])
        #expect(rules.rule(for: "team:open")?.pattern == "team:open")
        #expect(rules.rule(for: "team:abc")?.pattern == "team:a*")
        #expect(rules.rule(for: "team:x")?.pattern == "team:*")
        #expect(rules.rule(for: "other")?.pattern == "*")
        #expect(ChannelRules([]).rule(for: "x") == nil)
    }

    @Test func theHubSendsAChannelEventToItsSubscribersAmongManyChannels() async throws {
        let hub = EventHub()
        // 5,000 channels with a subscriber each; a publish reaches only its own.
        let subscriptions = (0..<5000).map { hub.subscribe(.anonymous, channels: ["c:\($0)"]) }
        let target = hub.subscribe(.anonymous, channels: ["c:17", "c:4000"])
        hub.publish(type: "t", data: "x", to: .channel("c:17"))
        let got = await received(target)
        #expect(got.map(\.data) == ["x"])
        #expect(await received(subscriptions[17]).map(\.data) == ["x"])
        #expect(await received(subscriptions[18]).isEmpty)
        for subscription in subscriptions { subscription.cancel() }
    }

    @Test func theExampleAppPublishesCommentsToThePostsChannel() async throws {
        let server = try await TestServer.start(try TestDirectory())
        defer { Task { try? await server.stop() } }
        let carol = ["X-User": "carol", "X-Password": "herald-demo"]
        let bob = ["X-User": "bob", "X-Password": "herald-demo"]
        let posts = try await server.request(.GET, "/structr/rest/Post", headers: carol).result
        let post = try #require(posts.arrayValue?.first?["id"]?.stringValue)
        let watcher = try await EventStream(server, headers: carol, path: "/structr/EventSource?channels=post:\(post)")
        defer { watcher.close() }
        #expect(watcher.status == 200)
        let comment = try await server.request(
            .POST,
            "/structr/rest/Comment",
            body: #"{"text": "Nice post", "post": "\#(post)", "author": "b0b00000000000000000000000000002"}"#,
            headers: bob
        )
        #expect(comment.status == 201, "\(comment.text)")
        #expect(try await watcher.waitFor("event: comment"))
        #expect(watcher.text.contains(#""text":"Nice post""#))
        // The team channel is open to Engineering's members, bob and (through Frontend) carol,
        // not to alice.
        let alice = ["X-User": "alice", "X-Password": "herald-demo"]
        let team = try await server.request(.GET, "/structr/EventSource?channels=team:Engineering", headers: alice)
        #expect(team.status == 403, "\(team.text)")
        let member = try await EventStream(server, headers: bob, path: "/structr/EventSource?channels=team:Engineering")
        let nested = try await EventStream(
            server,
            headers: carol,
            path: "/structr/EventSource?channels=team:Engineering"
        )
        defer { for stream in [member, nested] { stream.close() } }
        #expect(member.status == 200 && nested.status == 200)
    }
}
