import Foundation
import HeraldSchema
import NIOHTTP1
import Testing

/// Bad input of every shape gets a JSON error and never a 500, and refused writes write nothing.
@Suite struct RobustnessTests {
    /// A small deterministic generator (SplitMix64), so a failure reproduces.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ options: [T]) -> T { options[int(options.count)] }
    }

    static let keys = [
        "name", "priority", "status", "done", "due", "budget", "meta", "notes", "lead", "tags", "tasks",
        "id", "type", "owner", "createdDate", "visibleToPublicUsers", "unknown", "", "_page", "naMe", "\u{0}",
    ]

    static func value(_ r: inout Random, depth: Int = 0) -> JSONValue {
        switch r.int(depth > 2 ? 7 : 9) {
        case 0: return .null
        case 1: return .bool(r.int(2) == 0)
        case 2: return .int(r.pick([0, -1, 1, Int64.max, Int64.min, 253_402_300_800_000, 42]))
        case 3: return .double(r.pick([0.5, -1e300, 1e300, 3.0, 1e-300]))
        case 4:
            return .string(
                r.pick([
                    "", "open", "x", "2024-01-01", "0000000000000000000000000000000g",
                    String(repeating: "é", count: 300), "a\u{0}b", "[1 TO 2]",
                ])
            )
        case 5: return .string(EntityID.generate())
        case 6: return .string("2024-13-45T99:99:99Z")
        case 7: return .array((0..<r.int(4)).map { _ in value(&r, depth: depth + 1) })
        default:
            var o = JSONObject()
            for _ in 0..<r.int(5) { o[r.pick(keys)] = value(&r, depth: depth + 1) }
            return .object(o)
        }
    }

    @Test func randomBodiesPathsAndQueriesNeverBreakTheServer() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let existing = try await server.create("Project", #"{"name": "existing", "notes": "unchanged"}"#)
        var r = Random(state: 20_261_121)
        let rawBodies = [
            "{", "}", "[", "nul", "\"", "{\"a\":}", "\u{FEFF}{}", String(repeating: "[", count: 5000),
            "{\"name\": \"\\ud800\"}", "1e99999",
        ]
        var statuses: [Int: Int] = [:]
        for i in 0..<400 {
            let type = r.pick(["Project", "Task", "Tag", "User", "Group", "Nope", "project", "_schema"])
            let path: String
            switch r.int(5) {
            case 0: path = "/structr/rest/\(type)"
            case 1: path = "/structr/rest/\(type)/\(existing)"
            case 2:
                path = "/structr/rest/\(type)/\(r.pick([EntityID.generate(), "x", "%00", "..", existing.uppercased()]))"
            case 3:
                let key = r.pick(Self.keys.filter { !$0.isEmpty && $0 != "\u{0}" })
                let v = r.pick([
                    "", "x", "1", "true", "[1 TO 2]", "[ TO ]", "[x TO y]", "a;b", "%5B*%20TO%20*%5D", existing,
                    "2024-01-01",
                ])
                path =
                    "/structr/rest/\(type)?\(key)=\(v)&_sort=\(r.pick(["name", "x", "owner", "id"]))&_pageSize=\(r.pick(["1", "0", "-1", "abc", "10000"]))&_page=\(r.pick(["1", "0", "99999999999"]))&_inexact=\(r.int(2))"
            default: path = "/structr/rest/\(type)/\(existing)/\(r.pick(["go", "x", "1"]))"
            }
            let method = r.pick([.GET, .POST, .PUT, .DELETE, .PATCH, .OPTIONS] as [HTTPMethod])
            let body: String? =
                method == .GET || method == .DELETE ? nil : (i % 7 == 0 ? r.pick(rawBodies) : Self.value(&r).jsonString)
            let safeMethod = method == .DELETE && path.contains(existing) ? HTTPMethod.GET : method
            let answer = try await server.request(safeMethod, path, body: body)
            statuses[answer.status, default: 0] += 1
            #expect(answer.status < 500, "\(safeMethod) \(path) \(body ?? "") -> \(answer.status) \(answer.text)")
            if answer.status >= 400 {
                #expect(answer.json["code"] == .int(Int64(answer.status)), "\(safeMethod) \(path) -> \(answer.text)")
            }
        }
        #expect(statuses.keys.contains(422))
        #expect(statuses.keys.contains(400))
        #expect(statuses.keys.contains(404))
        // The server still answers normally afterwards.
        #expect(try await server.request(.GET, "/structr/rest/Project/\(existing)").status == 200)
    }

    @Test func aRefusedUpdateLeavesEveryValueAndLinkAsItWas() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let tag = try await server.create("Tag", #"{"name": "t"}"#)
        let id = try await server.create("Project", #"{"name": "P", "priority": 1, "tags": ["\#(tag)"]}"#)
        let before = try await server.get("/structr/rest/Project/\(id)")
        let refused = try await server.request(
            .PUT,
            "/structr/rest/Project/\(id)",
            body: #"{"priority": 5, "tags": [], "status": "bogus"}"#
        )
        #expect(refused.status == 422)
        #expect(try await server.get("/structr/rest/Project/\(id)") == before)
    }
}
