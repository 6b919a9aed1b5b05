import Foundation
import HeraldSchema
import Testing

@testable import HeraldHTTP

@Suite struct SessionTests {
    static func setCookie(_ answer: HTTPResult) -> String? {
        answer.headers["Set-Cookie"].first { $0.hasPrefix("JSESSIONID=") }
    }

    static func token(_ answer: HTTPResult) -> String? {
        setCookie(answer).flatMap { $0.split(separator: ";").first }.map { String($0.dropFirst("JSESSIONID=".count)) }
    }

    func start(_ directory: TestDirectory? = nil, _ configure: (inout HeraldServerConfiguration) -> Void = { _ in })
        async throws -> TestServer
    {
        let server = try await TestServer.start(
            try directory ?? TestDirectory(files: projectSchema),
            configure: configure
        )
        _ = try await server.create(
            "User",
            #"{"name": "root", "eMail": "root@example.com", "password": "root-pw", "isAdmin": true}"#
        )
        _ = try await server.create("User", #"{"name": "joe", "password": "joe-pw"}"#)
        return server
    }

    func login(_ server: TestServer, _ body: String, cookie: String? = nil) async throws -> HTTPResult {
        var headers: [String: String] = [:]
        if let cookie { headers["Cookie"] = "JSESSIONID=\(cookie)" }
        return try await server.request(.POST, "/structr/rest/login", body: body, headers: headers)
    }

    @Test func loginSetsAHardenedCookieThatAuthenticates() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let answer = try await login(server, #"{"name": "root", "password": "root-pw"}"#)
        #expect(answer.status == 200)
        #expect(answer.result["name"] == "root")
        #expect(answer.result["password"] == nil)
        let cookie = try #require(Self.setCookie(answer))
        #expect(cookie.contains("HttpOnly"))
        #expect(cookie.contains("SameSite=Lax"))
        #expect(cookie.contains("Path=/"))
        #expect(!cookie.contains("Secure"))
        let token = try #require(Self.token(answer))
        let list = try await server.request(.GET, "/structr/rest/Project", headers: ["Cookie": "JSESSIONID=\(token)"])
        #expect(list.status == 200)
        let me = try await server.request(.GET, "/structr/rest/me", headers: ["Cookie": "JSESSIONID=\(token)"])
        #expect(me.result["name"] == "root")
        #expect(me.result["password"] == nil)
        let byMail = try await login(server, #"{"eMail": "root@example.com", "password": "root-pw"}"#)
        #expect(byMail.status == 200)
    }

    @Test func secureCookiesAreMarkedSecure() async throws {
        let server = try await start { $0.secureCookies = true }
        defer { Task { try? await server.stop() } }
        let answer = try await login(server, #"{"name": "root", "password": "root-pw"}"#)
        #expect(Self.setCookie(answer)?.contains("Secure") == true)
    }

    @Test func everyLoginGetsANewSessionIdAndLogoutEndsIt() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let first = try #require(Self.token(try await login(server, #"{"name": "root", "password": "root-pw"}"#)))
        let planted = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        let second = try #require(
            Self.token(try await login(server, #"{"name": "root", "password": "root-pw"}"#, cookie: planted))
        )
        #expect(first != second)
        #expect(second != planted)
        #expect(
            try await server.request(.GET, "/structr/rest/me", headers: ["Cookie": "JSESSIONID=\(planted)"]).status
                == 401
        )
        let logout = try await server.request(
            .POST,
            "/structr/rest/logout",
            headers: ["Cookie": "JSESSIONID=\(second)"]
        )
        #expect(logout.status == 200)
        #expect(Self.setCookie(logout)?.contains("Max-Age=0") == true)
        #expect(
            try await server.request(.GET, "/structr/rest/me", headers: ["Cookie": "JSESSIONID=\(second)"]).status
                == 401
        )
        #expect(
            try await server.request(.GET, "/structr/rest/me", headers: ["Cookie": "JSESSIONID=\(first)"]).status == 200
        )
    }

    @Test func wrongUnknownAndLockedLookTheSame() async throws {
        let server = try await start { $0.loginMaxFailures = 3 }
        defer { Task { try? await server.stop() } }
        let wrong = try await login(server, #"{"name": "joe", "password": "nope"}"#)
        let unknown = try await login(server, #"{"name": "nobody", "password": "nope"}"#)
        #expect(wrong.status == 401)
        #expect(unknown.status == 401)
        #expect(wrong.json == unknown.json)
        #expect(try await login(server, #"{"name": "superuser", "password": "test-secret"}"#).status == 401)
        // A body of the wrong shape is refused like a wrong password, in the same words.
        for body in [#"{"password": "x"}"#, #"{"name": "joe", "password": 1}"#, "[1, 2]", "{", ""] {
            let malformed = try await login(server, body)
            #expect(malformed.status == 401, "\(body)")
            #expect(malformed.json == wrong.json, "\(body)")
        }
        // Two more failures lock joe; then even the right password is refused, in the same words.
        _ = try await login(server, #"{"name": "joe", "password": "nope"}"#)
        _ = try await login(server, #"{"name": "joe", "password": "nope"}"#)
        let locked = try await login(server, #"{"name": "joe", "password": "joe-pw"}"#)
        #expect(locked.status == 401)
        #expect(locked.json == wrong.json)
        #expect(try await login(server, #"{"name": "root", "password": "root-pw"}"#).status == 200)
    }

    @Test func theLockEndsAfterItsTime() async throws {
        let server = try await start {
            $0.loginMaxFailures = 1
            $0.loginLockout = 8
        }
        defer { Task { try? await server.stop() } }
        // The lock starts between `sent` and the first answer; a second answer back within the
        // lock's time from `sent` was certainly given while it held (a loaded machine may take
        // longer, and then there is nothing to tell).
        let sent = ContinuousClock.now
        _ = try await login(server, #"{"name": "joe", "password": "nope"}"#)
        let lockedAt = ContinuousClock.now
        let during = try await login(server, #"{"name": "joe", "password": "joe-pw"}"#).status
        if ContinuousClock.now - sent < .seconds(8) { #expect(during == 401) }
        try await Task.sleep(until: lockedAt + .milliseconds(8300))
        #expect(try await login(server, #"{"name": "joe", "password": "joe-pw"}"#).status == 200)
    }

    @Test func aSessionIdentifiesANonAdminWhoStillNeedsGrants() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let token = try #require(Self.token(try await login(server, #"{"name": "joe", "password": "joe-pw"}"#)))
        let me = try await server.request(.GET, "/structr/rest/me", headers: ["Cookie": "JSESSIONID=\(token)"])
        #expect(me.result["name"] == "joe")
        #expect(
            try await server.request(.GET, "/structr/rest/Project", headers: ["Cookie": "JSESSIONID=\(token)"]).status
                == 401
        )
        #expect(try await server.request(.GET, "/structr/rest/me", headers: [:]).status == 401)
    }

    @Test func sessionsSurviveARestart() async throws {
        let directory = try TestDirectory(files: projectSchema)
        let first = try await start(directory)
        let token = try #require(Self.token(try await login(first, #"{"name": "root", "password": "root-pw"}"#)))
        try await first.stop()
        let second = try await TestServer.start(directory)
        defer { Task { try? await second.stop() } }
        #expect(
            try await second.request(.GET, "/structr/rest/me", headers: ["Cookie": "JSESSIONID=\(token)"]).status == 200
        )
    }

    @Test func sessionsExpireWhenIdle() async throws {
        let server = try await start { $0.sessionIdleTimeout = 1 }
        defer { Task { try? await server.stop() } }
        let token = try #require(Self.token(try await login(server, #"{"name": "root", "password": "root-pw"}"#)))
        try await Task.sleep(for: .milliseconds(2200))
        #expect(
            try await server.request(.GET, "/structr/rest/me", headers: ["Cookie": "JSESSIONID=\(token)"]).status == 401
        )
    }

    @Test func sessionKeysAreTheLowercaseHexOfSHA256() {
        // Keys stored by earlier versions must still match: the FIPS 180-2 vector for "abc".
        #expect(Sessions.key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(EntityID.hex([0x00, 0x0f, 0xa0, 0xff]) == "000fa0ff")
    }

    @Test func aDemotionTakesEffectAtOnceForASessionAlreadyInUse() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let token = try #require(Self.token(try await login(server, #"{"name": "root", "password": "root-pw"}"#)))
        let cookie = ["Cookie": "JSESSIONID=\(token)"]
        // Used twice: the second answer comes from the session cache.
        for _ in 0..<2 {
            #expect(try await server.request(.GET, "/structr/rest/me", headers: cookie).result["isAdmin"] == true)
        }
        #expect(try await server.request(.GET, "/structr/rest/Project", headers: cookie).status == 200)
        let root = try #require(try await server.get("/structr/rest/User?name=root").ids.first)
        #expect(
            try await server.request(.PUT, "/structr/rest/User/\(root)", body: #"{"isAdmin": false}"#).status == 200
        )
        #expect(try await server.request(.GET, "/structr/rest/me", headers: cookie).result["isAdmin"] == false)
        // Without a grant for Project, a non-admin is refused.
        #expect(try await server.request(.GET, "/structr/rest/Project", headers: cookie).status != 200)
        // Logging out ends the cached session at once.
        #expect(try await server.request(.POST, "/structr/rest/logout", headers: cookie).status == 200)
        #expect(try await server.request(.GET, "/structr/rest/me", headers: cookie).status == 401)
    }

    @Test func deletingTheUserEndsItsSessions() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let token = try #require(Self.token(try await login(server, #"{"name": "joe", "password": "joe-pw"}"#)))
        let joe = try #require(try await server.get("/structr/rest/User?name=joe").ids.first)
        #expect(try await server.request(.DELETE, "/structr/rest/User/\(joe)").status == 200)
        #expect(
            try await server.request(.GET, "/structr/rest/me", headers: ["Cookie": "JSESSIONID=\(token)"]).status == 401
        )
    }
}

@Suite struct BrowserProtectionTests {
    func adminSession(_ server: TestServer) async throws -> String {
        _ = try await server.create("User", #"{"name": "root", "password": "root-pw", "isAdmin": true}"#)
        return try await server.login("root", "root-pw")
    }

    @Test func nothingIsAllowedCrossOriginByDefault() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let preflight = try await server.request(
            .OPTIONS,
            "/structr/rest/Project",
            headers: ["Origin": "https://evil.example", "Access-Control-Request-Method": "POST"]
        )
        #expect(preflight.status == 403)
        #expect(preflight.headers["Access-Control-Allow-Origin"].isEmpty)
        var headers = TestServer.superuser
        headers["Origin"] = "https://evil.example"
        let get = try await server.request(.GET, "/structr/rest/Project", headers: headers)
        #expect(get.status == 200)
        #expect(get.headers["Access-Control-Allow-Origin"].isEmpty)
    }

    @Test func listedOriginsGetCORSWithCredentials() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema)) {
            $0.corsAllowedOrigins = ["https://app.example"]
        }
        defer { Task { try? await server.stop() } }
        let preflight = try await server.request(
            .OPTIONS,
            "/structr/rest/Project",
            headers: ["Origin": "https://app.example", "Access-Control-Request-Method": "POST"]
        )
        #expect(preflight.status == 204)
        #expect(preflight.headers["Access-Control-Allow-Origin"].first == "https://app.example")
        #expect(preflight.headers["Access-Control-Allow-Credentials"].first == "true")
        #expect(preflight.headers["Access-Control-Allow-Methods"].first?.contains("PUT") == true)
        let token = try await adminSession(server)
        let post = try await server.request(
            .POST,
            "/structr/rest/Project",
            body: #"{"name": "from the app"}"#,
            headers: ["Origin": "https://app.example", "Cookie": "JSESSIONID=\(token)"]
        )
        #expect(post.status == 201)
        #expect(post.headers["Access-Control-Allow-Origin"].first == "https://app.example")
    }

    @Test func crossSiteRequestsWithTheSessionCookieAreRefused() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let token = try await adminSession(server)
        let cookie = "JSESSIONID=\(token)"
        let forged = try await server.request(
            .POST,
            "/structr/rest/Project",
            body: #"{"name": "forged"}"#,
            headers: ["Origin": "https://evil.example", "Cookie": cookie]
        )
        #expect(forged.status == 403)
        let viaReferer = try await server.request(
            .DELETE,
            "/structr/rest/Project/\(EntityID.generate())",
            headers: ["Referer": "https://evil.example/page", "Cookie": cookie]
        )
        #expect(viaReferer.status == 403)
        #expect(try await server.get("/structr/rest/Project") == [])
        let sameOrigin = try await server.request(
            .POST,
            "/structr/rest/Project",
            body: #"{"name": "ours"}"#,
            headers: ["Origin": "http://127.0.0.1:\(server.port)", "Cookie": cookie]
        )
        #expect(sameOrigin.status == 201)
        let noBrowser = try await server.request(
            .POST,
            "/structr/rest/Project",
            body: #"{"name": "cli"}"#,
            headers: ["Cookie": cookie]
        )
        #expect(noBrowser.status == 201)
        let reading = try await server.request(
            .GET,
            "/structr/rest/Project",
            headers: ["Origin": "https://evil.example", "Cookie": cookie]
        )
        #expect(reading.status == 200)
    }
}
