import Foundation
import HeraldSchema
import NIOHTTP1
import Testing

/// Structr REST semantics a Structr application relies on (#16).
@Suite struct ConformanceTests {
    static let files: [String: String] = [
        "Note.json":
            #"{"properties": {"title": "string", "stars": {"type": "integer", "default": 3}, "seen": "integer"}}"#,
        "Note/onSave.js": "{ $.this.seen = ($.this.seen || 0) + 1; }",
        "Page.json": #"{"properties": {"page": "string", "name": "string"}}"#,
        "Tag.json": #"{"properties": {"name": "string", "labels": "json"}}"#,
        "Board.json":
            #"{"properties": {"title": "string"}, "relationships": {"tags": {"to": "Tag", "cardinality": "many", "inverse": "boards"}}}"#,
        "global/echo.js": "{ return $.arguments.value; }",
        "global/halfEmoji.js":
            "{ const s = 'ab\u{1F600}cd'.substring(0, 3); $.broadcastEvent('half', s); $.broadcastEvent('halfInObject', {s}); return {s, list: [s, '\\uDC00x']}; }",
        "Shelf.json": #"{"properties": {"name": "string", "archived": "boolean"}}"#,
        "Shelf/archive.js": "{ $.this.archived = true; return {name: $.this.name, why: $.arguments.why}; }",
        "global/archiveFirst.js":
            "{ const shelf = $.find('Shelf', 'name', 'old')[0]; const r = shelf.archive({why: 'dusty'}); return {r, archived: shelf.archived, type: typeof shelf.archive}; }",
    ]

    static func start() async throws -> TestServer {
        try await TestServer.start(try TestDirectory(files: files))
    }

    @Test func emptyBodiesCreateWithDefaultsAndUpdateNothing() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        let created = try await server.request(.POST, "/structr/rest/Note", body: nil)
        #expect(created.status == 201)
        let id = try #require(created.result.arrayValue?.first?.stringValue)
        let note = try await server.get("/structr/rest/Note/\(id)")
        #expect(note["stars"] == 3)
        #expect(note["seen"] == .null)
        let modified = note["lastModifiedDate"]
        for body in [nil, "{}"] {
            let put = try await server.request(.PUT, "/structr/rest/Note/\(id)", body: body)
            #expect(put.status == 200)
            #expect(put.result["id"]?.stringValue == id)
        }
        // Nothing changed and no onSave ran.
        let after = try await server.get("/structr/rest/Note/\(id)")
        #expect(after["lastModifiedDate"] == modified)
        #expect(after["seen"] == .null)
        // A real update still runs the hook.
        #expect(try await server.request(.PUT, "/structr/rest/Note/\(id)", body: #"{"title": "t"}"#).status == 200)
        #expect(try await server.get("/structr/rest/Note/\(id)")["seen"] == 1)
    }

    @Test func singleResultsCarryStructrsEnvelope() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        let post = try await server.request(.POST, "/structr/rest/Note", body: #"[{"title": "a"}, {"title": "b"}]"#)
        let get = try await server.request(
            .GET,
            "/structr/rest/Note/\(try #require(post.result.arrayValue?.first?.stringValue))"
        )
        let method = try await server.request(.POST, "/structr/rest/echo", body: #"{"value": "x"}"#)
        for (answer, count) in [(post, 2), (get, 1), (method, 1)] {
            #expect(answer.json["result_count"] == JSONValue.int(Int64(count)))
            #expect(answer.json["page_count"] == 1)
            #expect(answer.json["query_time"]?.stringValue.flatMap(Double.init) != nil)
            #expect(answer.json["serialization_time"]?.stringValue.flatMap(Double.init) != nil)
        }
        let none = try await server.request(.POST, "/structr/rest/echo", body: "{}")
        #expect(none.json["result"] == .null)
        #expect(none.json["result_count"] == 0)
        #expect(none.json["page_count"] == 0)
        let empty = try await server.request(.GET, "/structr/rest/Tag")
        #expect(empty.json["result_count"] == 0)
        #expect(empty.json["page_count"] == 0)
        let paged = try await server.request(.GET, "/structr/rest/Note?_pageSize=1")
        #expect(paged.json["page_count"] == 2)
    }

    @Test func unknownPathsAndMalformedIdsAre404() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        for (method, path) in [
            (HTTPMethod.GET, "/structr/rest/nothingHere"), (.POST, "/structr/rest/nothingHere"),
            (.GET, "/structr/rest/Note/not-an-id"), (.PUT, "/structr/rest/Note/12345"),
            (.POST, "/structr/rest/Note/xyz/archive"),
        ] {
            let answer = try await server.request(method, path, body: method == .GET ? nil : "{}")
            #expect(answer.status == 404, "\(method) \(path)")
            #expect(answer.json["code"] == 404, "\(method) \(path)")
        }
        // A global method that exists still answers only POST.
        #expect(try await server.request(.GET, "/structr/rest/echo").status == 405)
    }

    @Test func legacyParameterNamesSortAndPage() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        for title in ["b", "c", "a"] { _ = try await server.create("Note", #"{"title": "\#(title)"}"#) }
        let sorted = try await server.get("/structr/rest/Note?sort=title&order=desc")
        #expect(sorted.arrayValue?.compactMap { $0["title"]?.stringValue } == ["c", "b", "a"])
        let paged = try await server.request(.GET, "/structr/rest/Note?sort=title&page=2&pageSize=2")
        #expect(paged.result.arrayValue?.compactMap { $0["title"]?.stringValue } == ["c"])
        #expect(paged.json["page_count"] == 2)
        // A type with a property named like a legacy parameter filters on it instead.
        _ = try await server.create("Page", #"{"page": "home", "name": "x"}"#)
        _ = try await server.create("Page", #"{"page": "about", "name": "y"}"#)
        let filtered = try await server.get("/structr/rest/Page?page=home")
        #expect(filtered.arrayValue?.compactMap { $0["name"]?.stringValue } == ["x"])
    }

    @Test func aUserNeedsANameOrAnEMail() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        let nameless = try await server.request(.POST, "/structr/rest/User", body: #"{"password": "pw-pw-pw"}"#)
        #expect(nameless.status == 422)
        #expect(nameless.json.tokens == ["must_not_be_empty"])
        #expect(nameless.json["errors"]?.arrayValue?.first?["property"] == "name")
        #expect(try await server.get("/structr/rest/User").arrayValue?.isEmpty == true)
        let byMail = try await server.create("User", #"{"eMail": "a@example.com"}"#)
        // Taking the last of the two away is refused too.
        let cleared = try await server.request(.PUT, "/structr/rest/User/\(byMail)", body: #"{"eMail": null}"#)
        #expect(cleared.status == 422)
        #expect(try await server.get("/structr/rest/User/\(byMail)")["eMail"] == "a@example.com")
        #expect(
            try await server.request(.PUT, "/structr/rest/User/\(byMail)", body: #"{"name": "ann", "eMail": null}"#)
                .status == 200
        )
    }

    @Test func aReferenceWithExtraKeysIsRefusedAndWritesNothing() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        let tag = try await server.create("Tag", #"{"name": "t"}"#)
        let refused = try await server.request(
            .POST,
            "/structr/rest/Board",
            body: #"{"tags": [{"id": "\#(tag)", "name": "renamed"}]}"#
        )
        #expect(refused.status == 422)
        #expect(refused.json.tokens == ["unsupported_nested_write"])
        #expect(refused.json["errors"]?.arrayValue?.first?["detail"]?.stringValue?.contains("name") == true)
        #expect(try await server.get("/structr/rest/Board").arrayValue?.isEmpty == true)
        #expect(try await server.get("/structr/rest/Tag/\(tag)")["name"] == "t")
        // `id` with its own `type` is a plain reference.
        let board = try await server.create("Board", #"{"tags": [{"id": "\#(tag)", "type": "Tag"}]}"#)
        #expect(
            try await server.get("/structr/rest/Board/\(board)")["tags"]?.arrayValue?.first?["id"]?.stringValue == tag
        )
    }

    @Test func anEntitysOwnMethodsAreCallableFromScripts() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        let id = try await server.create("Shelf", #"{"name": "old"}"#)
        let answer = try await server.request(.POST, "/structr/rest/archiveFirst", body: "{}")
        #expect(answer.status == 200)
        #expect(answer.result["r"]?["name"] == "old")
        #expect(answer.result["r"]?["why"] == "dusty")
        #expect(answer.result["archived"] == true)
        #expect(answer.result["type"] == "function")
        // The method's write is part of the caller's unit of work, and committed with it.
        #expect(try await server.get("/structr/rest/Shelf/\(id)")["archived"] == true)
    }

    @Test func aLoneSurrogateBecomesTheReplacementCharacterEverywhere() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        let stream = try await EventStream(server, headers: TestServer.superuser)
        defer { stream.close() }
        #expect(try await stream.waitFor("retry:"))
        let answer = try await server.request(.POST, "/structr/rest/halfEmoji", body: "{}")
        #expect(answer.status == 200)
        #expect(answer.result["s"] == "ab\u{FFFD}")
        #expect(answer.result["list"] == ["ab\u{FFFD}", "\u{FFFD}x"])
        #expect(try await stream.waitFor("event: half\ndata: ab\u{FFFD}\n"))
        #expect(try await stream.waitFor(#"event: halfInObject"# + "\n" + #"data: {"s":"ab\#u{FFFD}"}"#))
    }

    @Test func relatedSearchFormsAllNoneAndEmptyLists() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        let a = try await server.create("Tag", #"{"name": "a", "labels": []}"#)
        let b = try await server.create("Tag", #"{"name": "b", "labels": ["x"]}"#)
        _ = try await server.create("Tag", #"{"name": "c"}"#)
        _ = try await server.create("Board", #"{"title": "both", "tags": ["\#(a)", "\#(b)"]}"#)
        _ = try await server.create("Board", #"{"title": "onlyA", "tags": ["\#(a)"]}"#)
        _ = try await server.create("Board", #"{"title": "none"}"#)
        func titles(_ query: String) async throws -> [String] {
            try await server.get("/structr/rest/Board?\(query)&_sort=title").arrayValue?.compactMap {
                $0["title"]?.stringValue
            } ?? []
        }
        #expect(try await titles("tags=\(a),\(b)") == ["both"])
        #expect(try await titles("tags=\(a);\(b)") == ["both", "onlyA"])
        #expect(try await titles("tags=") == ["none"])
        #expect(try await titles("tags=null") == ["none"])
        let empty = try await server.get("/structr/rest/Tag?labels=[]&_sort=name")
        #expect(empty.arrayValue?.compactMap { $0["name"]?.stringValue } == ["a", "c"])
    }

    @Test func typelessPathsFindTheObjectWhateverItsType() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        let tag = try await server.create("Tag", #"{"name": "t"}"#)
        let get = try await server.request(.GET, "/structr/rest/\(tag)")
        #expect(get.status == 200)
        #expect(get.result["type"] == "Tag")
        #expect(try await server.request(.PUT, "/structr/rest/\(tag)", body: #"{"name": "u"}"#).status == 200)
        #expect(try await server.get("/structr/rest/Tag/\(tag)")["name"] == "u")
        #expect(try await server.request(.DELETE, "/structr/rest/\(tag)").status == 200)
        #expect(try await server.request(.GET, "/structr/rest/\(tag)").status == 404)
        // An object the caller cannot see is not found, the same as one that does not exist.
        let hidden = try await server.create("Tag", #"{"name": "hidden"}"#)
        let anonymous = try await server.request(.GET, "/structr/rest/\(hidden)", headers: [:])
        let missing = try await server.request(.GET, "/structr/rest/\(EntityID.generate())", headers: [:])
        #expect(anonymous.status == 404)
        #expect(missing.status == 404)
        #expect(anonymous.json["message"]?.stringValue?.hasPrefix("No object with id") == true)
    }

    @Test func nestedCollectionsListWithFiltersAndCreateAndLink() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        let board = try await server.create("Board", #"{"title": "b"}"#)
        for name in ["z", "y", "x"] {
            let created = try await server.request(
                .POST,
                "/structr/rest/Board/\(board)/tags",
                body: #"{"name": "\#(name)"}"#
            )
            #expect(created.status == 201)
            #expect(created.headers["Location"].first?.contains("/structr/rest/Tag/") == true)
        }
        _ = try await server.create("Tag", #"{"name": "elsewhere"}"#)
        let all = try await server.request(.GET, "/structr/rest/Board/\(board)/tags?_sort=name")
        #expect(all.result.arrayValue?.compactMap { $0["name"]?.stringValue } == ["x", "y", "z"])
        #expect(all.json["result_count"] == 3)
        let page = try await server.request(.GET, "/structr/rest/Board/\(board)/tags?_sort=name&_pageSize=2&_page=2")
        #expect(page.result.arrayValue?.compactMap { $0["name"]?.stringValue } == ["z"])
        #expect(page.json["page_count"] == 2)
        let filtered = try await server.get("/structr/rest/Board/\(board)/tags?name=y")
        #expect(filtered.arrayValue?.count == 1)
        // The links are there from the other side too.
        let tags = try await server.get("/structr/rest/Board/\(board)")["tags"]?.arrayValue
        #expect(tags?.count == 3)
        // A relationship to several types cannot be listed as one collection.
        let group = try await server.create("Group", #"{"name": "g"}"#)
        #expect(try await server.request(.GET, "/structr/rest/Group/\(group)/members").status == 400)
        #expect(try await server.request(.GET, "/structr/rest/Board/\(EntityID.generate())/tags").status == 404)
    }

    @Test func patchOnACollectionUpdatesTheListedObjectsInOneTransaction() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        let a = try await server.create("Note", #"{"title": "a"}"#)
        let b = try await server.create("Note", #"{"title": "b"}"#)
        let patched = try await server.request(
            .PATCH,
            "/structr/rest/Note",
            body: #"[{"id": "\#(a)", "stars": 5}, {"id": "\#(b)", "title": "b2"}]"#
        )
        #expect(patched.status == 200)
        #expect(patched.json["result_count"] == 2)
        #expect(try await server.get("/structr/rest/Note/\(a)")["stars"] == 5)
        #expect(try await server.get("/structr/rest/Note/\(b)")["title"] == "b2")
        // onSave ran for each.
        #expect(try await server.get("/structr/rest/Note/\(a)")["seen"] == 1)
        // One bad element refuses them all.
        let refused = try await server.request(
            .PATCH,
            "/structr/rest/Note",
            body: #"[{"id": "\#(a)", "stars": 1}, {"id": "\#(b)", "stars": "many"}]"#
        )
        #expect(refused.status == 422)
        #expect(try await server.get("/structr/rest/Note/\(a)")["stars"] == 5)
        #expect(try await server.request(.PATCH, "/structr/rest/Note", body: #"[{"stars": 1}]"#).status == 400)
        #expect(try await server.request(.PATCH, "/structr/rest/Note", body: #"{"stars": 1}"#).status == 400)
    }

    @Test func headAnswersLikeGetWithoutABody() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        let id = try await server.create("Note", #"{"title": "h"}"#)
        let get = try await server.request(.GET, "/structr/rest/Note/\(id)")
        let head = try await server.request(.HEAD, "/structr/rest/Note/\(id)")
        #expect(head.status == 200)
        #expect(head.headers["Content-Type"] == get.headers["Content-Type"])
        // The length GET's body would have, though none is sent.
        #expect(head.headers["Content-Length"].first == String(get.text.utf8.count))
        #expect(try await server.request(.HEAD, "/structr/rest/Note").status == 200)
        #expect(try await server.request(.HEAD, "/structr/rest/Note/\(EntityID.generate())").status == 404)
        // The stream's HEAD: its headers, its checks, no stream.
        let stream = try await server.request(.HEAD, "/structr/EventSource")
        #expect(stream.status == 200)
        #expect(stream.headers["Content-Type"].first?.hasPrefix("text/event-stream") == true)
        #expect(try await server.request(.HEAD, "/structr/EventSource", headers: [:]).status == 401)
        #expect(
            try await server.request(
                .HEAD,
                "/structr/EventSource",
                headers: TestServer.superuser.merging(["Accept": "application/json"]) { $1 }
            ).status == 406
        )
    }

    @Test func headIsCheckedAgainstTheGrantsHeadBits() async throws {
        let server = try await Self.start()
        defer { Task { try? await server.stop() } }
        _ = try await server.create("User", #"{"name": "hank", "password": "hank-pw"}"#)
        let grant = try await server.create("ResourceAccess", #"{"signature": "Note", "flags": 1}"#)
        let hank = ["X-User": "hank", "X-Password": "hank-pw"]
        #expect(try await server.request(.GET, "/structr/rest/Note", headers: hank).status == 200)
        #expect(try await server.request(.HEAD, "/structr/rest/Note", headers: hank).status == 401)
        // AUTH_USER_HEAD = 1024.
        #expect(
            try await server.request(.PUT, "/structr/rest/ResourceAccess/\(grant)", body: #"{"flags": 1025}"#).status
                == 200
        )
        #expect(try await server.request(.HEAD, "/structr/rest/Note", headers: hank).status == 200)
    }

    static let viewSchema: [String: String] = {
        var files = projectSchema
        files["Project.json"] = """
            {
              "properties": {
                "name": { "type": "string", "required": true, "unique": true },
                "priority": { "type": "integer", "default": 0 },
                "notes": "string"
              },
              "relationships": { "tags": { "to": "Tag", "cardinality": "many", "inverse": "projects" } },
              "views": { "summary": ["priority", "name", "tags"], "dated": ["name", "createdDate"] }
            }
            """
        return files
    }()

    @Test func viewsShowTheirPropertiesAndBuiltInViewsShowEverything() async throws {
        let server = try await TestServer.start(try TestDirectory(files: Self.viewSchema))
        defer { Task { try? await server.stop() } }
        let tag = try await server.create("Tag", #"{"name": "t"}"#)
        let project = try await server.create("Project", #"{"name": "P", "notes": "n", "tags": ["\#(tag)"]}"#)

        let summary = try await server.get("/structr/rest/Project/summary")
        let item = try #require(summary.arrayValue?.first?.objectValue)
        #expect(Array(item.keys) == ["id", "type", "priority", "name", "tags"])
        #expect(item["tags"] == [["id": .string(tag), "type": "Tag", "name": "t"]])
        let one = try await server.request(.GET, "/structr/rest/Project/\(project)/summary")
        #expect(one.status == 200)
        #expect(one.result.objectValue.map { Array($0.keys) } == ["id", "type", "priority", "name", "tags"])
        #expect(one.json["result_count"] == 1)
        // System properties may be listed too; filters and paging apply to a view's list.
        let dated = try await server.get("/structr/rest/Project/dated?name=P&_pageSize=1")
        #expect(dated.arrayValue?.first?.objectValue.map { Array($0.keys) } == ["id", "type", "name", "createdDate"])
        #expect(try await server.get("/structr/rest/Project/dated?name=nope").arrayValue == [])

        // public (the default), all and ui show every readable property; all and ui show
        // linked objects as {id, type, name}, as Structr does.
        let plain = try await server.get("/structr/rest/Project/\(project)")
        #expect(try await server.get("/structr/rest/Project/\(project)/public") == plain)
        #expect(plain["tags"]?.arrayValue?.first?["projects"] != nil)
        for view in ["all", "ui"] {
            let shown = try await server.get("/structr/rest/Project/\(project)/\(view)")
            #expect(shown.objectValue.map { Array($0.keys) } == plain.objectValue.map { Array($0.keys) }, "\(view)")
            #expect(shown["tags"] == [["id": .string(tag), "type": "Tag", "name": "t"]], "\(view)")
        }
        #expect(plain["notes"] == "n")
        // A view is read-only, and an unknown one is neither a view nor an object.
        #expect(try await server.request(.POST, "/structr/rest/Project/summary", body: "{}").status == 405)
        #expect(try await server.request(.PUT, "/structr/rest/Project/\(project)/summary", body: "{}").status == 405)
        #expect(try await server.request(.GET, "/structr/rest/Project/\(project)/nosuchview").status != 200)
    }

    @Test func viewsAreCheckedWhenTheSchemaLoads() throws {
        func error(_ views: String) -> String? {
            var files = projectSchema
            files["Tag.json"] = #"{ "properties": { "name": "string" }, "views": \#(views) }"#
            do {
                let directory = try TestDirectory(files: files)
                _ = try SchemaLoader(directory: directory.schema).load()
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(
            error(#"{"short": ["name", "colour"]}"#)?.contains("'colour' is not a property or relationship of Tag")
                == true
        )
        #expect(error(#"{"public": ["name"]}"#)?.contains("built-in view") == true)
        #expect(error(#"{"name": ["name"]}"#)?.contains("clashes") == true)
        #expect(error(#"{"short": []}"#)?.contains("non-empty list") == true)
        #expect(error(#"{"short": ["name", 3]}"#)?.contains("as strings") == true)
        #expect(error(#"{"short": ["name", "projects"]}"#) == nil)
    }
}
