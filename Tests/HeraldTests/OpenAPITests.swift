import Foundation
import HeraldSchema
import Testing

/// `GET /structr/openapi`: the OpenAPI 3.1 document of the loaded schema.
@Suite struct OpenAPITests {
    @Test func theDocumentCoversEveryTypeMethodAndSecurityScheme() async throws {
        let server = try await TestServer.start(try TestDirectory())
        defer { Task { try? await server.stop() } }
        let answer = try await server.request(.GET, "/structr/openapi", headers: [:])
        #expect(answer.status == 200)
        #expect(answer.headers["Content-Type"].first?.hasPrefix("application/json") == true)
        let document = try JSONValue(parsing: answer.text)
        #expect(document["openapi"] == "3.1.0")
        let paths = try #require(document["paths"]?.objectValue)
        for type in ["Post", "Comment", "Document", "DataItem", "User", "Group"] {
            #expect(paths["/structr/rest/\(type)"]?["get"] != nil, "\(type)")
            #expect(paths["/structr/rest/\(type)"]?["post"] != nil, "\(type)")
            #expect(paths["/structr/rest/\(type)/{id}"]?["put"] != nil, "\(type)")
            #expect(paths["/structr/rest/\(type)/{id}"]?["delete"] != nil, "\(type)")
            #expect(document["components"]?["schemas"]?[type] != nil, "\(type)")
        }
        #expect(paths["/structr/rest/Post/{id}/comments"]?["get"] != nil)
        #expect(paths["/structr/rest/Document/{id}/startEditing"]?["post"] != nil)
        #expect(paths["/structr/rest/processDataItems"]?["post"] != nil)
        #expect(paths["/structr/rest/login"]?["post"] != nil)
        #expect(paths["/structr/EventSource"]?["get"]?["parameters"]?.arrayValue?.first?["name"] == "channels")
        // Query parameters: paging, sorting by a declared property, and a filter per property.
        let parameters = try #require(paths["/structr/rest/Post"]?["get"]?["parameters"]?.arrayValue)
        let names = parameters.compactMap { $0["name"]?.stringValue }
        #expect(names.contains("_page") && names.contains("_pageSize") && names.contains("title"))
        let sort = parameters.first { $0["name"] == "_sort" }?["schema"]?["enum"]?.arrayValue ?? []
        #expect(sort.contains("priority"))
        // Bodies: required properties without a default are required on create only.
        let create = try #require(document["components"]?["schemas"]?["PostCreate"])
        #expect(create["required"] == ["title"])
        #expect(document["components"]?["schemas"]?["PostInput"]?["required"] == nil)
        #expect(create["properties"]?["status"]?["enum"] == ["draft", "published", .null])
        #expect(document["components"]?["schemas"]?["User"]?["properties"]?["password"] == nil)
        // Errors, security, events and channels.
        #expect(document["components"]?["schemas"]?["Error"]?["required"] == ["code", "message"])
        let schemes = try #require(document["components"]?["securitySchemes"]?.objectValue)
        #expect(Set(schemes.keys) == ["sessionCookie", "bearerToken", "userHeader", "passwordHeader"])
        #expect(schemes["sessionCookie"]?["name"] == "JSESSIONID")
        #expect(document["components"]?["schemas"]?["Event_notification"]?["required"]?.arrayValue?.count == 4)
        #expect(document["x-herald-channels"]?["team:*"]?["subscribe"] == "isTeamMember")
        // The schema listing (the admin console's schema page) shows them too.
        let listing = try await server.get("/structr/rest/_schema")
        #expect(listing["events"]?.arrayValue?.compactMap { $0["name"]?.stringValue }.contains("notification") == true)
        #expect(listing["channels"]?.arrayValue?.contains(["pattern": "news", "subscribe": "public"]) == true)
    }

    @Test func theDocumentNeedsItsGrantAndFollowsReloads() async throws {
        let directory = try TestDirectory(files: [
            "Item.json": #"{"properties": {"name": "string"}}"#,
            "initial-data.json": #"{"User": [{"name": "joe", "password": "joe-pw"}]}"#,
        ])
        let server = try await TestServer.start(directory) { $0.schemaReloadInterval = 100 }
        defer { Task { try? await server.stop() } }
        #expect(try await server.request(.GET, "/structr/openapi", headers: [:]).status == 401)
        let joe = try await server.request(
            .GET,
            "/structr/openapi",
            headers: ["X-User": "joe", "X-Password": "joe-pw"]
        )
        #expect(joe.status == 401, "no _openapi grant, as for any resource")
        #expect(try await server.request(.GET, "/structr/openapi").status == 200)

        try directory.write(["Tag.json": #"{"properties": {"label": "string"}}"#, "global/hello.js": "{ return 1; }"])
        #expect(
            try await eventually(20) {
                let document = try JSONValue(parsing: try await server.request(.GET, "/structr/openapi.json").text)
                return document["paths"]?["/structr/rest/Tag"] != nil
                    && document["paths"]?["/structr/rest/hello"] != nil
            }
        )
    }

    @Test func aNullVisibilityFlagIsItsDefaultNotAServerError() async throws {
        // Found by schemathesis: null reached the NOT NULL column and answered 500.
        let server = try await TestServer.start(
            try TestDirectory(files: ["Item.json": #"{"properties": {"name": "string"}}"#])
        )
        defer { Task { try? await server.stop() } }
        let created = try await server.request(
            .POST,
            "/structr/rest/Item",
            body: #"{"name": "a", "visibleToAuthenticatedUsers": null, "visibleToPublicUsers": null}"#
        )
        #expect(created.status == 201, "\(created.text)")
        let id = try #require(created.result.arrayValue?.first?.stringValue)
        let item = try await server.get("/structr/rest/Item/\(id)")
        #expect(item["visibleToAuthenticatedUsers"] == false && item["visibleToPublicUsers"] == false)
        let shown = try await server.request(.PUT, "/structr/rest/Item/\(id)", body: #"{"visibleToPublicUsers": true}"#)
        #expect(shown.status == 200)
        let cleared = try await server.request(
            .PUT,
            "/structr/rest/Item/\(id)",
            body: #"{"visibleToPublicUsers": null}"#
        )
        #expect(cleared.status == 200, "\(cleared.text)")
        #expect(try await server.get("/structr/rest/Item/\(id)")["visibleToPublicUsers"] == false)
    }
}
