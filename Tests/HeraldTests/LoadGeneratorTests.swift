import Foundation
import HeraldSchema
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The benchmark's load generator (bench/loadgen/sseload.c), built with the system's C compiler
/// and run against its own trivial server and against Herald: what it reports must be what the
/// servers delivered.
@Suite(.serialized) struct LoadGeneratorTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// sseload, compiled once for all tests on a thread of its own: `cc -O2` takes seconds, and
    /// blocking one of Swift's two pool threads that long stalls every in-process server.
    static let compiled = Task { try await offPool { try compile() } }

    static func build() async throws -> URL { try await compiled.value }

    /// Builds sseload into the package's `.build/test-tools`, which goes with the build: built
    /// under a name of its own, then moved into place, so a run beside this one never sees half
    /// a binary and nothing is left in the temporary folder.
    static func compile() throws -> URL {
        let folder = root.appendingPathComponent(".build/test-tools")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let building = folder.appendingPathComponent("sseload-\(UUID().uuidString)")
        let binary = folder.appendingPathComponent("sseload")
        let status = try run(
            "/usr/bin/cc",
            [
                "-O2", "-pthread", "-o", building.path, root.appendingPathComponent("bench/loadgen/sseload.c").path,
                "-lnghttp2",
            ]
        ).status
        guard status == 0 else {
            try? FileManager.default.removeItem(at: building)
            throw TestFailure("cc failed")
        }
        guard rename(building.path, binary.path) == 0 else { throw TestFailure("could not move sseload into place") }
        return binary
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = try ChildProcess(executable, arguments)
        let status = process.waitUntilExit()
        return (status, String(decoding: process.output, as: UTF8.self))
    }

    static func freePort() throws -> Int {
        // Bind to port 0 and read the port back.
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func step(_ output: String) throws -> JSONValue {
        let report = try JSONValue(parsing: output)
        guard case .array(let steps)? = report["steps"], let step = steps.first else {
            throw TestFailure("no steps in \(output)")
        }
        return step
    }

    @Test func countsEveryDeliveryOfItsOwnTrivialServer() async throws {
        let sseload = try await Self.build()
        let port = try Self.freePort()
        let server = try ChildProcess(sseload.path, ["serve", "--port", String(port)], captureOutput: false)
        defer {
            server.kill9()
            server.waitUntilExit()
        }
        try await Task.sleep(for: .milliseconds(200))
        let output = try await offPool {
            try Self.run(
                sseload.path,
                [
                    "run", "--port", String(port), "--path", "/sub/all", "--streams", "50", "--pub-path", "/pub/all",
                    "--rates", "20", "--step-seconds", "1", "--pid", String(server.processIdentifier),
                ]
            ).output
        }
        let report = try JSONValue(parsing: output)
        #expect(report["connected"] == 50)
        let step = try step(output)
        #expect(step["published"] == 20)
        #expect(step["received"] == 1000)
        #expect(step["expected"] == 1000)
        #expect(step["incomplete_publishes"] == 0)
        #expect((step["p99_us"]?.intValue ?? 0) > 0)
    }

    @Test func decodesHeraldsChunkedStreamsAndMeasuresPublishToReceive() async throws {
        let sseload = try await Self.build()
        let files = [
            "global/publish.js": "{ $.broadcastEvent('bench', JSON.stringify($.arguments), true, true); }",
            "initial-data.json":
                #"{"ResourceAccess": [{"signature": "_eventSource", "flags": 17}, {"signature": "publish", "flags": 64}]}"#,
        ]
        let server = try await TestServer.start(try TestDirectory(files: files))
        defer { Task { try? await server.stop() } }
        let result = try await offPool {
            try Self.run(
                sseload.path,
                [
                    "run", "--port", String(server.port), "--path", "/structr/EventSource", "--streams", "40",
                    "--pub-path", "/structr/rest/publish", "--rates", "25", "--step-seconds", "1",
                    // Stragglers on a loaded machine (a clean-clone run once counted 120 of 280).
                    "--drain-seconds", "6",
                    "--pid", String(ProcessInfo.processInfo.processIdentifier),
                ]
            )
        }
        #expect(result.status == 0)
        let step = try step(result.output)
        #expect(step["publish_errors"] == 0)
        #expect(step["received"] == step["expected"])
        // Every stream got every publish, and enough got through even on a loaded machine (a
        // debug build next to compiles, half the suite in parallel: 4 of 25 seen) that the counts mean something.
        let published = step["published"]?.intValue ?? 0
        #expect(published >= 2)
        #expect(step["expected"]?.intValue == published * 40)
        #expect((step["p50_us"]?.intValue ?? 0) > 0)
        #expect((step["server_cpu_s"]?.doubleValue ?? 0) > 0)
    }

    @Test func readsHeraldsStreamsOverHTTP2ManyPerConnection() async throws {
        let sseload = try await Self.build()
        let files = [
            "global/publish.js": "{ $.broadcastEvent('bench', JSON.stringify($.arguments), true, true); }",
            "initial-data.json":
                #"{"ResourceAccess": [{"signature": "_eventSource", "flags": 17}, {"signature": "publish", "flags": 64}]}"#,
        ]
        let server = try await TestServer.start(try TestDirectory(files: files)) { $0.http2Cleartext = true }
        defer { Task { try? await server.stop() } }
        // 40 streams as HTTP/2 streams, 16 per connection (three connections); publishing stays HTTP/1.1.
        let result = try await offPool {
            try Self.run(
                sseload.path,
                [
                    "run", "--port", String(server.port), "--path", "/structr/EventSource", "--streams", "40",
                    "--h2", "16", "--pub-path", "/structr/rest/publish", "--rates", "10", "--step-seconds", "1",
                    // The wait for stragglers ends as soon as all arrived; on a loaded machine the
                    // default 2 s once saw 399 of 400.
                    "--drain-seconds", "6",
                ]
            )
        }
        #expect(result.status == 0)
        let report = try JSONValue(parsing: result.output)
        #expect(report["connected"] == 40)
        #expect(report["failed"] == 0)
        let step = try step(result.output)
        let published = step["published"]?.intValue ?? 0
        #expect(published >= 2)
        #expect(step["publish_errors"] == 0)
        #expect(step["received"]?.intValue == published * 40)
        #expect(step["incomplete_publishes"] == 0)
    }
}
