import Foundation
import HeraldSchema
import HeraldServer
import Testing

/// Hooks and methods run in JavaScriptCore with the semantics of structr-facts.md.
@Suite struct ScriptingTests {
    static let schema: [String: String] = [
        "Item.json":
            #"{"properties": {"name": {"type": "string", "required": true}, "count": {"type": "integer", "default": 0}, "note": "string"}}"#,
        "Log.json": #"{"properties": {"message": "string"}}"#,
        "Post.json":
            #"{"properties": {"title": "string"}, "relationships": {"author": {"to": "User", "cardinality": "one", "inverse": "posts"}}}"#,
        "Comment.json":
            #"{"properties": {"text": "string"}, "relationships": {"post": {"to": "Post", "cardinality": "one", "inverse": "comments"}}}"#,
        "Item/onCreate.js": """
        {
            if ($.this.name === 'forbidden') {
                throw new Error('forbidden name');
            }
            $.this.note = 'created by ' + ($.me ? $.me.name : 'nobody');
        }
        """,
        "Item/onCreateAudit.js": "{ $.create('Log', {message: 'audit ' + $.this.name}); }",
        "Item/onSave.js": """
        {
            let m = $.modifications;
            if (m.after.count !== undefined && m.after.count < 0) {
                $.error('count', 'must_not_be_negative', 'count below zero');
            }
            $.create('Log', {message: 'save ' + JSON.stringify(m.before) + ' -> ' + JSON.stringify($.retrieve('modifications').after)});
        }
        """,
        "Item/onDelete.js": "{ $.assert($.this.name !== 'keep', 403, 'keep cannot be deleted'); }",
        "Item/afterCreate.js": """
        {
            if ($.this.name === 'after-fails') { throw new Error('after failed'); }
            $.create('Log', {message: 'after ' + $.this.name});
        }
        """,
        "Item/afterDelete.js": "{ $.create('Log', {message: 'deleted ' + $.data.name}); }",
        "Comment/afterDelete.js": "{ $.create('Log', {message: 'comment of ' + $.data.post}); }",
        "Item/increment.js": "{ $.this.count = $.this.count + ($.arguments.by || 1); return $.this.count; }",
        "Item/summary.js":
            "{ return { total: $.size($.find('Item')), names: $.find('Item').map(i => i.name).sort() }; }",
        "global/spin.js": "{ while (true) {} }",
        "global/echo.js":
            "{ return {args: $.arguments, request: $.request, me: $.me.name, isDate: $.now instanceof Date, same: $ === Structr}; }",
        "global/storeRetrieve.js": "{ $.store('k', {a: 1}); return $.retrieve('k'); }",
        "global/liveEntities.js": """
        {
            let ann = $.first($.find('User', 'name', 'ann'));
            let post = $.create('Post', {title: 'p', author: ann});
            let comment = $.create('Comment', {text: 'hello', post: post});
            let viaMap = $.find('Comment', {post: post});
            return {
                author: comment.post.author.name,
                json: JSON.parse(JSON.stringify(comment)).post.id === post.id,
                created: typeof comment.createdDate.getTime,
                found: viaMap.length,
                byId: $.find('Post', post.id).title,
                keys: Object.keys(comment).includes('text'),
                snake: typeof $.get_or_create
            };
        }
        """,
        "global/badAssign.js": "{ let i = $.create('Item', {name: 'x'}); i.count = 'many'; }",
        "global/badSyntax.js": "{\n  let = ;\n}",
        "global/throwsOnLine3.js": "{\n  let a = 1;\n  throw new Error('boom');\n}",
        "global/privileged.js": "{ return $.doPrivileged(() => $.me.name); }",
    ]

    func start(_ configure: (inout HeraldServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        try await TestServer.start(try TestDirectory(files: Self.schema), configure: configure)
    }

    func messages(_ server: TestServer) async throws -> [String] {
        try await server.get("/structr/rest/Log?_sort=createdDate").arrayValue?.compactMap {
            $0["message"]?.stringValue
        } ?? []
    }

    @Test func onCreateHooksRunInsideTheTransactionAndAfterCreateAfterIt() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let id = try await server.create("Item", #"{"name": "first"}"#)
        #expect(try await server.get("/structr/rest/Item/\(id)")["note"] == "created by superuser")
        #expect(Set(try await messages(server)) == ["audit first", "after first"])
    }

    @Test func aThrowingOnCreateLeavesNoRowAndNoSideEffects() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let answer = try await server.request(
            .POST,
            "/structr/rest/Item",
            body: #"[{"name": "fine"}, {"name": "forbidden"}]"#
        )
        #expect(answer.status == 422)
        #expect(answer.json["message"]?.stringValue?.contains("forbidden name") == true)
        #expect(answer.json["message"]?.stringValue?.contains("Item/onCreate.js:3") == true)
        #expect(try await server.get("/structr/rest/Item") == [])
        #expect(try await messages(server) == [])
    }

    @Test func aThrowingAfterCreateLeavesTheRow() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let id = try await server.create("Item", #"{"name": "after-fails"}"#)
        #expect(try await server.get("/structr/rest/Item/\(id)")["name"] == "after-fails")
        #expect(try await messages(server) == ["audit after-fails"])
    }

    @Test func onSaveSeesModificationsAndErrorRollsBack() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let id = try await server.create("Item", #"{"name": "counter", "count": 2}"#)
        #expect(try await server.request(.PUT, "/structr/rest/Item/\(id)", body: #"{"count": 3}"#).status == 200)
        #expect(try await messages(server).last == #"save {"count":2} -> {"count":3}"#)
        let refused = try await server.request(.PUT, "/structr/rest/Item/\(id)", body: #"{"count": -1}"#)
        #expect(refused.status == 422)
        #expect(refused.json.tokens == ["must_not_be_negative"])
        #expect(try await server.get("/structr/rest/Item/\(id)")["count"] == 3)
        #expect(try await messages(server).count == 3)
    }

    @Test func onDeleteAssertAndAfterDeleteData() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let keep = try await server.create("Item", #"{"name": "keep"}"#)
        let refused = try await server.request(.DELETE, "/structr/rest/Item/\(keep)")
        #expect(refused.status == 403)
        #expect(refused.json["message"]?.stringValue?.contains("keep cannot be deleted") == true)
        #expect(try await server.request(.GET, "/structr/rest/Item/\(keep)").status == 200)
        let gone = try await server.create("Item", #"{"name": "gone"}"#)
        #expect(try await server.request(.DELETE, "/structr/rest/Item/\(gone)").status == 200)
        #expect(try await messages(server).last == "deleted gone")
        // A deleted object's links reach the hooks as ids.
        let post = try await server.create("Post", #"{"title": "p"}"#)
        let comment = try await server.create("Comment", #"{"text": "c", "post": "\#(post)"}"#)
        #expect(try await server.request(.DELETE, "/structr/rest/Comment/\(comment)").status == 200)
        #expect(try await messages(server).last == "comment of \(post)")
    }

    @Test func methodsOverREST() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let id = try await server.create("Item", #"{"name": "b"}"#)
        _ = try await server.create("Item", #"{"name": "a"}"#)
        let incremented = try await server.request(.POST, "/structr/rest/Item/\(id)/increment", body: #"{"by": 5}"#)
        #expect(incremented.status == 200)
        #expect(incremented.result == 5)
        #expect(try await server.request(.POST, "/structr/rest/Item/\(id)/increment").result == 6)
        #expect(try await server.get("/structr/rest/Item/\(id)")["count"] == 6)
        let summary = try await server.request(.POST, "/structr/rest/Item/summary")
        #expect(summary.result == ["total": 2, "names": ["a", "b"]])
        let echo = try await server.request(.POST, "/structr/rest/echo?x=1", body: #"{"k": [1, 2]}"#)
        #expect(
            echo.result == [
                "args": ["k": [1, 2]], "request": ["x": "1"], "me": "superuser", "isDate": true, "same": true,
            ]
        )
        #expect(try await server.request(.POST, "/structr/rest/storeRetrieve").result == ["a": 1])
        #expect(try await server.request(.POST, "/structr/rest/nothing").status == 404)
        #expect(try await server.request(.POST, "/structr/rest/Item/\(id)/onCreate").status == 404)
        #expect(try await server.request(.POST, "/structr/rest/Item/\(EntityID.generate())/increment").status == 404)
        #expect(try await server.request(.GET, "/structr/rest/echo").status == 405)
        #expect(try await server.request(.POST, "/structr/rest/privileged").result == "superuser")
    }

    @Test func liveEntitiesReadAndWriteAcrossRelationships() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        _ = try await server.create("User", #"{"name": "ann", "password": "pw"}"#)
        let answer = try await server.request(.POST, "/structr/rest/liveEntities")
        #expect(answer.status == 200, "\(answer.text)")
        #expect(
            answer.result
                == [
                    "author": "ann", "json": true, "created": "function", "found": 1, "byId": "p", "keys": true,
                    "snake": "function",
                ]
        )
    }

    @Test func aWrongAssignmentNamesThePropertyAndRollsBack() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let answer = try await server.request(.POST, "/structr/rest/badAssign")
        #expect(answer.status == 422)
        #expect(answer.json.tokens == ["must_be_integer"])
        #expect(answer.json["errors"]?.arrayValue?.first?["property"] == "count")
        #expect(try await server.get("/structr/rest/Item") == [])
    }

    @Test func errorsNameTheFileAndLine() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let thrown = try await server.request(.POST, "/structr/rest/throwsOnLine3")
        #expect(thrown.status == 422)
        #expect(thrown.json["message"]?.stringValue?.contains("throwsOnLine3 (global/throwsOnLine3.js:3)") == true)
        let syntax = try await server.request(.POST, "/structr/rest/badSyntax")
        #expect(syntax.status == 422)
        #expect(syntax.json["message"]?.stringValue?.contains("global/badSyntax.js:2") == true)
    }

    @Test func aRunawayScriptIsStoppedAndTheEngineStaysUsable() async throws {
        let server = try await start {
            $0.scriptTimeLimit = 300
            $0.scriptEngines = 1
        }
        defer { Task { try? await server.stop() } }
        let started = ContinuousClock.now
        let answer = try await server.request(.POST, "/structr/rest/spin")
        #expect(answer.status == 422)
        #expect(answer.json["message"]?.stringValue?.contains("time limit") == true)
        #expect(answer.json["message"]?.stringValue?.contains("spin (global/spin.js") == true)
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(try await server.request(.POST, "/structr/rest/echo").status == 200)
        _ = try await server.create("Item", #"{"name": "still works"}"#)
    }
}

typealias HeraldServerConfiguration = HeraldConfiguration

@Suite struct EngineConcurrencyTests {
    static let schema: [String: String] = [
        "Item.json": #"{"properties": {"name": "string"}}"#,
        "global/busy.js": """
        {
            let start = Date.now();
            let n = 0;
            while (Date.now() - start < 2000) { n++; }
            return { start: start, end: Date.now(), items: $.size($.find('Item')) };
        }
        """,
        "global/sneakyWrite.js": """
        {
            try { $.create('Item', {name: 'made'}); } catch (e) { }
            return $.size($.find('Item'));
        }
        """,
    ]

    @Test func twoEnginesRunReadOnlyMethodsInParallel() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.schema)) { $0.scriptEngines = 2 }
        defer { Task { try? await server.stop() } }
        async let first = server.request(.POST, "/structr/rest/busy")
        async let second = server.request(.POST, "/structr/rest/busy")
        let (a, b) = try await (first.result, second.result)
        let startA = try #require(a["start"]?.doubleValue)
        let endA = try #require(a["end"]?.doubleValue)
        let startB = try #require(b["start"]?.doubleValue)
        let endB = try #require(b["end"]?.doubleValue)
        // The two runs overlap in time: each started before the other ended.
        #expect(startA < endB && startB < endA)
    }

    @Test func aWriteInAReadSnapshotRestartsTheMethodForRealEvenIfCaught() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.schema))
        defer { Task { try? await server.stop() } }
        #expect(try await server.request(.POST, "/structr/rest/sneakyWrite").result == 1)
        #expect(try await server.get("/structr/rest/Item").arrayValue?.count == 1)
    }

    @Test func aFullQueueAnswers503() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.schema)) {
            $0.scriptEngines = 1
            $0.scriptQueueLimit = 0
        }
        defer { Task { try? await server.stop() } }
        let answers = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 { group.addTask { try await server.request(.POST, "/structr/rest/busy").status } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.contains(200))
        #expect(answers.contains(503))
        let overloaded = try await withThrowingTaskGroup(of: HTTPResult.self) { group in
            for _ in 0..<3 { group.addTask { try await server.request(.POST, "/structr/rest/busy") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }.first { $0.status == 503 }
        #expect(overloaded?.json["message"]?.stringValue?.contains("busy") == true)
    }
}

@Suite struct FindTests {
    static let schema: [String: String] = [
        "Project.json":
            #"{"properties": {"name": "string", "priority": "integer", "due": "date", "done": "boolean"}, "relationships": {"tasks": {"to": "Task", "cardinality": "many", "inverse": "project"}}}"#,
        "Task.json": #"{"properties": {"title": "string"}}"#,
        "global/names.js": """
        {
            const p = $.predicate;
            const names = (list) => list.map(x => x.name).join(',');
            return {
                all: names($.find('Project', p.sort('name'))),
                kv: names($.find('Project', 'priority', 2)),
                map: names($.find('Project', {done: true}, p.sort('name'))),
                equals: names($.find('Project', p.equals('name', 'beta'))),
                contains: names($.find('Project', p.contains('name', 'TA'), p.sort('name'))),
                startsWith: names($.find('Project', p.startsWith('name', 'ga'))),
                endsWith: names($.find('Project', p.endsWith('name', 'pha'))),
                range: names($.find('Project', p.range('priority', 2, 3), p.sort('priority', true))),
                lt: names($.find('Project', p.lt('priority', 2))),
                lte: names($.find('Project', p.lte('priority', 2), p.sort('name'))),
                gt: names($.find('Project', p.gt('priority', 2), p.sort('name'))),
                gte: names($.find('Project', p.gte('priority', 3), p.sort('name'))),
                and: names($.find('Project', p.and(p.gt('priority', 1), p.equals('done', true)))),
                or: names($.find('Project', p.or(p.equals('name', 'alpha'), p.equals('name', 'delta')), p.sort('name'))),
                not: names($.find('Project', p.not(p.equals('done', true)), p.sort('name'))),
                empty: names($.find('Project', p.empty('due'), p.sort('name'))),
                emptyRel: names($.find('Project', p.empty('tasks'), p.sort('name'))),
                dollarOr: names($.find('Project', {$or: [{name: 'alpha'}, {priority: 3}]}, p.sort('name'))),
                mapPredicate: names($.find('Project', {name: p.startsWith('de')})),
                date: names($.find('Project', p.gte('due', new Date('2025-06-01')))),
                page: names($.find('Project', p.sort('name'), p.page(2, 2))),
                related: names($.find('Project', {tasks: $.find('Task')})),
                byId: $.find('Project', $.first($.find('Project', 'name', 'alpha')).id).name,
                missing: $.find('Project', '00000000000000000000000000000000'),
                forOf: (() => { let n = 0; for (const x of $.find('Project')) { n += x.priority; } return n; })(),
            };
        }
        """,
        "global/badFind.js": "{ return $.find('Project', 'colour', 'red'); }",
    ]

    @Test func everyFormAndPredicate() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.schema))
        defer { Task { try? await server.stop() } }
        let task = try await server.create("Task", #"{"title": "t"}"#)
        _ = try await server.create("Project", #"{"name": "alpha", "priority": 1, "done": true, "due": "2025-01-01"}"#)
        _ = try await server.create("Project", #"{"name": "beta", "priority": 2, "done": false, "due": "2025-07-01"}"#)
        _ = try await server.create(
            "Project",
            #"{"name": "gamma", "priority": 3, "done": true, "tasks": ["\#(task)"]}"#
        )
        _ = try await server.create("Project", #"{"name": "delta", "priority": 4}"#)
        let answer = try await server.request(.POST, "/structr/rest/names")
        #expect(answer.status == 200, "\(answer.text)")
        let r = answer.result
        #expect(r["all"] == "alpha,beta,delta,gamma")
        #expect(r["kv"] == "beta")
        #expect(r["map"] == "alpha,gamma")
        #expect(r["equals"] == "beta")
        #expect(r["contains"] == "beta,delta")
        #expect(r["startsWith"] == "gamma")
        #expect(r["endsWith"] == "alpha")
        #expect(r["range"] == "gamma,beta")
        #expect(r["lt"] == "alpha")
        #expect(r["lte"] == "alpha,beta")
        #expect(r["gt"] == "delta,gamma")
        #expect(r["gte"] == "delta,gamma")
        #expect(r["and"] == "gamma")
        #expect(r["or"] == "alpha,delta")
        #expect(r["not"] == "beta,delta")
        #expect(r["empty"] == "delta,gamma")
        #expect(r["emptyRel"] == "alpha,beta,delta")
        #expect(r["dollarOr"] == "alpha,gamma")
        #expect(r["mapPredicate"] == "delta")
        #expect(r["date"] == "beta")
        #expect(r["page"] == "delta,gamma")
        #expect(r["related"] == "gamma")
        #expect(r["byId"] == "alpha")
        #expect(r["missing"] == .null)
        #expect(r["forOf"] == 10)
        let bad = try await server.request(.POST, "/structr/rest/badFind")
        #expect(bad.status == 422)
        #expect(bad.json["message"]?.stringValue?.contains("no property 'colour'") == true)
    }
}

@Suite struct StructrScriptTests {
    static let schema: [String: String] = [
        "Item.json": #"{"properties": {"name": "string", "count": "integer"}}"#,
        "Log.json": #"{"properties": {"message": "string"}}"#,
        "global/greet.js": "${concat('Hello, ', me.name, '!')}",
        "global/pick.js": "${if(empty(retrieve('nothing')), 'empty', 'full')}",
        "global/count.js": "${size(find('Item'))}",
        "global/first.js": "${first(find('Item', 'name', 'b')).count}",
        "global/logic.js":
            "${concat(and(true, 1), or(false, ''), not(null), is(equal(2, '2'), 'same'), equal(first(find('Item', 'name', 'a')), first(find('Item', 'name', 'a'))))}",
        "global/snake.js": "${get_or_create('Item', null)}",
        "Item/describe.js": "${concat(this.name, ':', this.count)}",
    ]

    @Test func expressionsRun() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.schema))
        defer { Task { try? await server.stop() } }
        let a = try await server.create("Item", #"{"name": "a", "count": 1}"#)
        _ = try await server.create("Item", #"{"name": "b", "count": 2}"#)
        #expect(try await server.request(.POST, "/structr/rest/greet").result == "Hello, superuser!")
        #expect(try await server.request(.POST, "/structr/rest/pick").result == "empty")
        #expect(try await server.request(.POST, "/structr/rest/count").result == 2)
        #expect(try await server.request(.POST, "/structr/rest/first").result == 2)
        #expect(try await server.request(.POST, "/structr/rest/logic").result == "truefalsetruesametrue")
        #expect(try await server.request(.POST, "/structr/rest/Item/\(a)/describe").result == "a:1")
        let listing = try await server.get("/structr/rest/_schema")
        let greet = (listing["globalMethods"]?.arrayValue ?? []).first { $0["name"] == "greet" }
        #expect(greet?["language"] == "StructrScript")
    }

    @Test func eachRunsItsExpressionForEveryItemWithData() async throws {
        let files = Self.schema.merging([
            "global/each.js": "${each(find('Item'), set(data, 'name', concat(data.name, '!')))}"
        ]) {
            $1
        }
        let server = try await TestServer.start(try TestDirectory(files: files))
        defer { Task { try? await server.stop() } }
        _ = try await server.create("Item", #"{"name": "a"}"#)
        _ = try await server.create("Item", #"{"name": "bbb"}"#)
        #expect(try await server.request(.POST, "/structr/rest/each").status == 200)
        let names = try await server.get("/structr/rest/Item?_sort=name").arrayValue?.compactMap { $0["name"] }
        #expect(names == ["a!", "bbb!"])
    }

    @Test func unknownFunctionsAndSyntaxErrorsAreReportedAtLoadWithPosition() throws {
        func error(_ source: String) -> SchemaError? {
            do {
                let directory = try TestDirectory(files: ["global/m.js": source])
                _ = try SchemaLoader(directory: directory.schema).load()
                return nil
            } catch {
                return error as? SchemaError
            }
        }
        let unknown = error("${concat('a', frobnicate(1))}")
        #expect(unknown?.file == "global/m.js")
        #expect(unknown?.message.contains("line 1, column 15: unknown function 'frobnicate'") == true)
        let syntax = error("\n  ${concat('a' 'b')}")
        #expect(syntax?.message.contains("line 2, column 16") == true)
        #expect(error("${concat('a', nobody)}")?.message.contains("unknown name 'nobody'") == true)
        #expect(error("${'unterminated}")?.message.contains("unterminated string") == true)
        #expect(error("${if(true)}")?.message.contains("if takes 2 to 3 arguments") == true)
        #expect(error("${sendEvent('message', 'Welcome!', find('User', 'name', 'Bob'))}") == nil)
    }
}

@Suite struct DollarFunctionTests {
    static let schema: [String: String] = [
        "Post.json": #"{"properties": {"title": "string"}}"#,
        "Comment.json":
            #"{"properties": {"text": "string", "stars": "integer", "meta": "json"}, "relationships": {"post": {"to": "Post", "cardinality": "one", "inverse": "comments"}}}"#,
        "global/functions.js": """
        {
            const a = $.create('Post', {title: 'a'});
            const b = $.create('Post', {title: 'b'});
            const c = $.create('Comment', {text: 'c', post: a, meta: {tags: ['x']}});
            const same = $.getOrCreate('Post', {title: 'a'});
            const made = $.getOrCreate('Post', {title: 'new'});
            $.set(c, {stars: 4});
            c.post = b;                      // a relationship written through a live entity
            const moved = a.comments.length === 0 && b.comments.length === 1;
            $.log('functions test', {count: $.size($.find('Post'))});
            const doomed = $.create('Post', {title: 'doomed'});
            $.delete(doomed);
            return {
                getOrCreateFound: same.id === a.id,
                getOrCreateMade: made.title,
                stars: $.get(c, 'stars'),
                metaTag: c.meta.tags[0],
                moved: moved,
                postTitle: $.get(c, 'post').title,
                posts: $.size($.find('Post')),
                doomedGone: $.find('Post', {title: 'doomed'}).length === 0,
                nullThisInGlobal: $.this === null,
                firstOfEmpty: $.first([]) === null,
            };
        }
        """,
        "global/typeError.js": "{ $.create('Nope', {}); }",
        "global/wrongRelationship.js": "{ const c = $.create('Comment', {text: 'x'}); c.post = 'not an id'; }",
    ]

    @Test func createGetOrCreateSetGetDeleteLogAndRelationshipWrites() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.schema))
        defer { Task { try? await server.stop() } }
        let answer = try await server.request(.POST, "/structr/rest/functions")
        #expect(answer.status == 200, "\(answer.text)")
        #expect(
            answer.result
                == [
                    "getOrCreateFound": true, "getOrCreateMade": "new", "stars": 4, "metaTag": "x", "moved": true,
                    "postTitle": "b", "posts": 3, "doomedGone": true, "nullThisInGlobal": true, "firstOfEmpty": true,
                ]
        )
        let comments = try await server.get("/structr/rest/Comment")
        #expect(comments.arrayValue?.first?["post"]?["title"] == "b")
        #expect(comments.arrayValue?.first?["stars"] == 4)
    }

    @Test func misuseIsAnErrorThatNamesTheProblem() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.schema))
        defer { Task { try? await server.stop() } }
        let unknownType = try await server.request(.POST, "/structr/rest/typeError")
        #expect(unknownType.status == 422)
        #expect(unknownType.json["message"]?.stringValue?.contains("unknown type 'Nope'") == true)
        let wrongRelationship = try await server.request(.POST, "/structr/rest/wrongRelationship")
        #expect(wrongRelationship.status == 422)
        #expect(wrongRelationship.json.tokens == ["must_be_reference"])
        #expect(try await server.get("/structr/rest/Comment") == [])
    }
}
