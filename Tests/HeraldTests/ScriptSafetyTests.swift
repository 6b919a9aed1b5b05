import Foundation
import HeraldSchema
import HeraldScripting
import NIOHTTP1
import Testing

/// No value a script produces crashes the server, and no script keeps an engine: the time limit
/// holds inside host calls and callbacks, the next script starts clean, the memory limit stops
/// a script and gives the memory back, and a stuck engine is replaced.
/// Serialized: the memory test reads this process's resident size, and the stuck-engine test
/// wants the engine threads it waits on not to be starved by the others.
@Suite(.serialized) struct ScriptSafetyTests {
    static let files: [String: String] = [
        "Tag.json": #"{"properties": {"name": "string"}}"#,
        "global/ok.js": "{ return 'fine'; }",
        "global/throwNullPrivileged.js": "{ $.doPrivileged(() => { throw null; }); }",
        "global/throwNaNLine.js": "{ throw {line: NaN, message: 'odd line'}; }",
        "global/assertNaN.js": "{ $.assert(false, NaN, 'nan status'); }",
        "global/status1000.js": "{ const e = new Error('big status'); e.__heraldStatus = 1000; throw e; }",
        "global/hugePage.js": "{ return $.find('Tag', $.predicate.page(8e15, 8e15)).length; }",
        "global/proxyLength.js": "{ return $.size(new Proxy([], {get: (t, k) => k === 'length' ? NaN : undefined})); }",
        "global/loopInLog.js": "{ $.log({toJSON() { while (true) {} }}); return 'escaped'; }",
        "global/loopInPrivileged.js": "{ $.doPrivileged(() => { while (true) {} }); return 'escaped'; }",
        "global/catchAndLoop.js": """
        {
            for (;;) {
                try { $.log({toJSON() { while (true) {} }}); } catch (e) {}
                try { $.doPrivileged(() => { for (;;) {} }); } catch (e) {}
            }
        }
        """,
        "global/recurse.js":
            "{ function f(n) { try { return f(n + 1); } catch (e) { return f(n + 1); } } return f(0); }",
        "global/hugeList.js": "{ return $.size(new Array(1e8)); }",
        "global/hog.js": "{ const a = []; for (;;) a.push('x'.repeat(1000) + a.length); }",
        "global/deep.js": "{ let v = 1; for (let i = 0; i < 300; i++) v = [v]; return v; }",
        "global/nul.js": "{ $.broadcastEvent('x', 'a\\u0000b'); }",
    ]

    func start(memoryMiB: Int = 512, timeLimit: Int = 700) async throws -> TestServer {
        try await TestServer.start(try TestDirectory(files: Self.files)) {
            $0.scriptTimeLimit = timeLimit
            $0.scriptMemoryLimit = memoryMiB
            $0.scriptEngines = 1
        }
    }

    func call(_ server: TestServer, _ method: String) async throws -> HTTPResult {
        try await server.request(.POST, "/structr/rest/\(method)", body: "{}")
    }

    @Test func oddThrownValuesAreClearErrors() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        for (method, text) in [
            ("throwNullPrivileged", "null"), ("throwNaNLine", "odd line"), ("assertNaN", "nan status"),
            ("status1000", "big status"), ("hugePage", "page needs a page"),
        ] {
            let answer = try await call(server, method)
            #expect((400...599).contains(answer.status), "\(method): \(answer.status)")
            #expect(answer.json["message"]?.stringValue?.contains(text) == true, "\(method): \(answer.text)")
        }
        #expect(try await call(server, "proxyLength").status == 200)
        #expect(try await call(server, "ok").result == "fine")
    }

    @Test func theTimeLimitHoldsInsideHostCallsAndTheNextScriptStartsClean() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        for method in ["loopInLog", "loopInPrivileged", "catchAndLoop", "recurse", "hugeList"] {
            let started = ContinuousClock.now
            let answer = try await call(server, method)
            if method == "hugeList" {
                // A native call building a 10^8-element list: whichever limit it meets first
                // stops it (time, or heap on a loaded machine), or its engine is replaced.
                #expect([422, 503].contains(answer.status), "\(method): \(answer.status) \(answer.text)")
                #expect(answer.text.contains("limit"), "\(method): \(answer.text)")
            } else {
                #expect(answer.status == 422, "\(method): \(answer.status) \(answer.text)")
                #expect(answer.text.contains("time limit"), "\(method): \(answer.text)")
            }
            #expect(ContinuousClock.now - started < .seconds(10), "\(method) was not stopped in time")
            // One engine: the next script runs on the same (replaced) engine and is not killed.
            #expect(try await call(server, "ok").result == "fine", "after \(method)")
        }
    }

    @Test func theMemoryLimitStopsAScriptAndTheMemoryComesBack() async throws {
        let server = try await start(memoryMiB: 64, timeLimit: 60_000)
        defer { Task { try? await server.stop() } }
        _ = try await call(server, "ok")
        let before = Self.residentMiB()
        let answer = try await call(server, "hog")
        #expect(answer.status == 422)
        #expect(answer.text.contains("memory limit"), "\(answer.text)")
        #expect(try await call(server, "ok").result == "fine")
        // The engine was replaced, so its heap goes back to the system.
        var after = Self.residentMiB()
        let deadline = ContinuousClock.now + .seconds(15)
        while after > before + 200, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(250))
            after = Self.residentMiB()
        }
        #expect(after < before + 200, "resident \(before) MiB before, \(after) MiB after")
    }

    @Test func deepResultsAndNulEventsAreClearErrors() async throws {
        let server = try await start()
        defer { Task { try? await server.stop() } }
        let deep = try await call(server, "deep")
        #expect(deep.status == 422)
        #expect(deep.text.contains("flatter"))
        let nul = try await call(server, "nul")
        #expect(nul.status == 422)
        #expect(nul.text.contains("U+0000"))
    }

    @Test func aStuckEngineIsReplaced() async throws {
        var configuration = EnginePool.Configuration(size: 1)
        configuration.timeLimit = .milliseconds(200)
        configuration.stuckAfter = .milliseconds(300)
        let pool = EnginePool(configuration: configuration)
        _ = try await pool.run { engine in engine.index }  // the engine exists
        let started = ContinuousClock.now
        await #expect(throws: ScriptError.engineStuck(limit: .milliseconds(200))) {
            // Native work that ignores every deadline.
            try await pool.run { _ in Thread.sleep(forTimeInterval: 10) }
        }
        // Answered by the supervisor (after 0.5 s), long before the stuck job would return.
        #expect(ContinuousClock.now - started < .seconds(6))
        // The replacement engine serves at once, while the stuck thread still sleeps.
        let index = try await pool.run { engine in engine.index }
        #expect(index == 0)
        await pool.shutdown()
    }

    /// This process's resident memory.
    static func residentMiB() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
            let pages = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE))) >> 20
    }
}
