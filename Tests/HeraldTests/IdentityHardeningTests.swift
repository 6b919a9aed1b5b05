import Foundation
import HeraldSchema
import HeraldServer
import NIOHTTP1
import Testing

/// Lockout by account, the per-client limit that guards the superuser, the credential cache,
/// visibility of `$.this` and of properties read in scripts, and the protected metrics endpoint.
@Suite struct IdentityHardeningTests {
    static let files: [String: String] = projectSchema.merging([
        "Project/describe.js": "{ return $.this.name; }",
        "global/ownerName.js": "{ const t = $.find('Tag', $.arguments.id); return t.owner ? t.owner.name : null; }",
    ]) { $1 }

    func start(_ configure: (inout HeraldConfiguration) -> Void = { _ in }) async throws -> TestServer {
        let server = try await TestServer.start(try TestDirectory(files: Self.files)) {
            $0.metricsToken = "scrape-secret"
            configure(&$0)
        }
        _ = try await server.create("User", #"{"name": "carol", "eMail": "carol@example.com", "password": "carol-pw"}"#)
        _ = try await server.create("User", #"{"name": "dave", "password": "dave-pw"}"#)
        for signature in ["Project/_id/describe", "ownerName"] {
            _ = try await server.create("ResourceAccess", #"{"signature": "\#(signature)", "flags": 4}"#)
        }
        return server
    }

    func login(_ server: TestServer, _ body: String) async throws -> Int {
        try await server.request(.POST, "/structr/rest/login", body: body, headers: [:]).status
    }

    func passwordChecks(_ server: TestServer) async throws -> Int {
        let basic = "Basic \(Data("metrics:scrape-secret".utf8).base64EncodedString())"
        let text = try await server.request(.GET, "/structr/metrics", headers: ["Authorization": basic]).text
        let line = text.split(separator: "\n").first { $0.hasPrefix("herald_password_checks_total ") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
    }

    @Test func failuresByNameLockTheEMailLoginToo() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        for _ in 0..<5 { #expect(try await login(server, #"{"name": "carol", "password": "guess"}"#) == 401) }
        #expect(try await login(server, #"{"eMail": "carol@example.com", "password": "carol-pw"}"#) == 401)
        #expect(try await login(server, #"{"name": "Carol", "password": "carol-pw"}"#) == 401)
        // Someone else's account is not affected.
        #expect(try await login(server, #"{"name": "dave", "password": "dave-pw"}"#) == 200)
    }

    @Test func wrongSuperuserPasswordsDoNotLockTheSuperuserOut() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        for _ in 0..<6 {
            let wrong = try await server.request(
                .GET,
                "/structr/rest/Project",
                headers: ["X-User": "superuser", "X-Password": "guess"]
            )
            #expect(wrong.status == 401)
        }
        #expect(try await server.request(.GET, "/structr/rest/Project").status == 200)
    }

    @Test func aClientPastItsFailureLimitGets429WithoutPasswordWork() async throws {
        let server = try await start { $0.loginClientMaxFailures = 8 }
        defer { Task { try? await server.stop() } }
        let dave = ["X-User": "dave", "X-Password": "dave-pw"]
        #expect(try await server.request(.GET, "/structr/rest/me", headers: dave).status == 200)
        for index in 0..<8 {
            let name = "nobody\(index)"
            #expect(try await login(server, #"{"name": "\#(name)", "password": "x"}"#) == 401)
        }
        let before = try await passwordChecks(server)
        let refused = try await server.request(
            .GET,
            "/structr/rest/me",
            headers: ["X-User": "superuser", "X-Password": "guess"]
        )
        #expect(refused.status == 429)
        #expect(refused.headers["Retry-After"].first.flatMap { Int($0) } ?? 0 > 0)
        #expect(refused.json["message"]?.stringValue?.contains("Too many failed logins") == true)
        #expect(try await login(server, #"{"name": "carol", "password": "carol-pw"}"#) == 429)
        // Credentials verified before still pass, from the cache.
        #expect(try await server.request(.GET, "/structr/rest/me", headers: dave).status == 200)
        #expect(try await passwordChecks(server) == before)
    }

    @Test func verifiedHeaderCredentialsAreCheckedOncePerLifetime() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let dave = ["X-User": "dave", "X-Password": "dave-pw"]
        let before = try await passwordChecks(server)
        for _ in 0..<5 { #expect(try await server.request(.GET, "/structr/rest/me", headers: dave).status == 200) }
        #expect(try await passwordChecks(server) == before + 1)
        // A changed password is verified afresh: the old one no longer works.
        let id = try #require(await server.get("/structr/rest/User?name=dave").ids.first)
        _ = try await server.request(.PUT, "/structr/rest/User/\(id)", body: #"{"password": "new-pw"}"#)
        #expect(try await server.request(.GET, "/structr/rest/me", headers: dave).status == 401)
    }

    @Test func methodsOnInvisibleObjectsAreNotFound() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let carol = ["X-User": "carol", "X-Password": "carol-pw"]
        let hidden = try await server.create("Project", #"{"name": "secret"}"#)
        let shown = try await server.create("Project", #"{"name": "open", "visibleToAuthenticatedUsers": true}"#)
        let refused = try await server.request(
            .POST,
            "/structr/rest/Project/\(hidden)/describe",
            body: "{}",
            headers: carol
        )
        #expect(refused.status == 404)
        #expect(!refused.text.contains("secret"))
        let allowed = try await server.request(
            .POST,
            "/structr/rest/Project/\(shown)/describe",
            body: "{}",
            headers: carol
        )
        #expect(allowed.result == "open")
    }

    @Test func scriptsDoNotReadInvisibleObjectsThroughOwner() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let carol = ["X-User": "carol", "X-Password": "carol-pw"]
        let hiddenUser = try await server.create("User", #"{"name": "hiddenOwner", "password": "pw-hidden"}"#)
        let tag = try await server.create(
            "Tag",
            #"{"name": "t", "owner": "\#(hiddenUser)", "visibleToAuthenticatedUsers": true}"#
        )
        let answer = try await server.request(
            .POST,
            "/structr/rest/ownerName",
            body: #"{"id": "\#(tag)"}"#,
            headers: carol
        )
        #expect(answer.status == 200)
        #expect(answer.result == .null)
        let asAdmin = try await server.request(.POST, "/structr/rest/ownerName", body: #"{"id": "\#(tag)"}"#)
        #expect(asAdmin.result == "hiddenOwner")
    }

    @Test func metricsNeedAnAdminOrTheMetricsToken() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let anonymous = try await server.request(.GET, "/structr/metrics", headers: [:])
        #expect(anonymous.status == 401)
        #expect(anonymous.headers["WWW-Authenticate"].first?.hasPrefix("Basic") == true)
        let user = ["X-User": "carol", "X-Password": "carol-pw"]
        #expect(try await server.request(.GET, "/structr/metrics", headers: user).status == 401)
        #expect(try await server.request(.GET, "/structr/metrics").status == 200)
        func basic(_ pair: String) -> [String: String] {
            ["Authorization": "Basic \(Data(pair.utf8).base64EncodedString())"]
        }
        let scraped = try await server.request(.GET, "/structr/metrics", headers: basic("metrics:scrape-secret"))
        #expect(scraped.status == 200)
        #expect(scraped.text.contains("herald_open_streams"))
        #expect(try await server.request(.GET, "/structr/metrics", headers: basic("metrics:wrong")).status == 401)
    }
}
