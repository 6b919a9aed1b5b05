import Foundation
import HeraldSchema
import Testing

@Suite struct TokenTests {
    func start(_ directory: TestDirectory? = nil, _ configure: (inout HeraldServerConfiguration) -> Void = { _ in })
        async throws -> TestServer
    {
        let server = try await TestServer.start(
            try directory ?? TestDirectory(files: projectSchema),
            configure: configure
        )
        if (try? await server.get("/structr/rest/User?name=root"))?.arrayValue?.isEmpty ?? true {
            _ = try await server.create("User", #"{"name": "root", "password": "root-pw", "isAdmin": true}"#)
        }
        return server
    }

    func tokens(_ server: TestServer, _ body: String = #"{"name": "root", "password": "root-pw"}"#) async throws
        -> HTTPResult
    {
        try await server.request(.POST, "/structr/rest/token", body: body, headers: [:])
    }

    @Test func bearerCookieAndRefresh() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let answer = try await tokens(server)
        #expect(answer.status == 200)
        #expect(answer.json["token_type"] == "Bearer")
        let access = try #require(answer.json["access_token"]?.stringValue)
        let refresh = try #require(answer.json["refresh_token"]?.stringValue)
        #expect(answer.headers["Set-Cookie"].contains { $0.hasPrefix("access_token=") && $0.contains("HttpOnly") })
        #expect(
            try await server.request(.GET, "/structr/rest/Project", headers: ["Authorization": "Bearer \(access)"])
                .status == 200
        )
        #expect(
            try await server.request(.GET, "/structr/rest/me", headers: ["Cookie": "access_token=\(access)"]).result[
                "name"
            ] == "root"
        )
        // A refresh token gets a new pair but never authenticates a request itself.
        #expect(
            try await server.request(.GET, "/structr/rest/me", headers: ["Authorization": "Bearer \(refresh)"]).status
                == 401
        )
        let refreshed = try await tokens(server, #"{"refresh_token": "\#(refresh)"}"#)
        #expect(refreshed.status == 200)
        let newAccess = try #require(refreshed.json["access_token"]?.stringValue)
        #expect(
            try await server.request(.GET, "/structr/rest/me", headers: ["Authorization": "Bearer \(newAccess)"]).status
                == 200
        )
        #expect(try await tokens(server, #"{"refresh_token": "\#(access)"}"#).status == 401)
    }

    @Test func forgedExpiredAndWrongAreRefused() async throws {
        let server = try await start { $0.accessTokenLifetime = 1 }
        defer { Task { try? await server.stop() } }
        #expect(try await tokens(server, #"{"name": "root", "password": "nope"}"#).status == 401)
        #expect(try await tokens(server, #"{"name": "superuser", "password": "test-secret"}"#).status == 401)
        let access = try #require(try await tokens(server).json["access_token"]?.stringValue)
        var parts = access.split(separator: ".").map(String.init)
        parts[2] = String(parts[2].reversed())
        let forged = parts.joined(separator: ".")
        #expect(
            try await server.request(.GET, "/structr/rest/me", headers: ["Authorization": "Bearer \(forged)"]).status
                == 401
        )
        #expect(
            try await server.request(.GET, "/structr/rest/me", headers: ["Authorization": "Bearer not.a.token"]).status
                == 401
        )
        try await Task.sleep(for: .milliseconds(2100))
        #expect(
            try await server.request(.GET, "/structr/rest/me", headers: ["Authorization": "Bearer \(access)"]).status
                == 401
        )
    }

    @Test func theGeneratedKeyIsKeptAcrossRestarts() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let first = try await start(directory)
        let access = try #require(try await tokens(first).json["access_token"]?.stringValue)
        try await first.stop()
        if TestDatabase.isSQLite {
            let attributes = try FileManager.default.attributesOfItem(
                atPath: directory.data.appendingPathComponent("jwt-secret").path
            )
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
        } else {
            // On a database nodes share, the key is kept there, so every node signs alike.
            let storage = try TestDatabase.storage(directory)
            defer { try? storage.close() }
            #expect(try await storage.read { tx in try tx.metadata("jwt.secret") }?.count == 64)
            #expect(!FileManager.default.fileExists(atPath: directory.data.appendingPathComponent("jwt-secret").path))
        }
        let second = try await start(directory)
        defer { Task { try? await second.stop() } }
        #expect(
            try await second.request(.GET, "/structr/rest/me", headers: ["Authorization": "Bearer \(access)"]).status
                == 200
        )
    }

    @Test func aConfiguredKeySignsAndAnotherKeysTokensAreForged() async throws {
        let server = try await start { $0.jwtSecret = "first-secret-of-enough-length-000000" }
        let access = try #require(try await tokens(server).json["access_token"]?.stringValue)
        try await server.stop()
        let other = try await start(server.directory) { $0.jwtSecret = "second-secret-of-enough-length-00000" }
        defer { Task { try? await other.stop() } }
        #expect(
            try await other.request(.GET, "/structr/rest/me", headers: ["Authorization": "Bearer \(access)"]).status
                == 401
        )
    }
}
