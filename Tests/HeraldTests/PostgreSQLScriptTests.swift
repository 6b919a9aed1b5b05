import Foundation
import Testing

/// `scripts/postgres`, which `scripts/test`, `scripts/cluster` and the benchmark start their
/// throwaway PostgreSQL servers with.
@Suite struct PostgreSQLScriptTests {
    /// Runs `scripts/postgres` and returns the last line it printed, failing on a non-zero exit.
    static func postgres(_ arguments: [String]) throws -> String {
        let process = try ChildProcess(repositoryRoot.appendingPathComponent("scripts/postgres").path, arguments)
        let status = process.waitUntilExit()
        let output = String(decoding: process.output, as: UTF8.self)
        guard status == 0 else {
            throw TestFailure("scripts/postgres \(arguments.joined(separator: " ")) exited with \(status): \(output)")
        }
        return output.split(separator: "\n").last.map(String.init) ?? ""
    }

    /// A folder below one that only its creator may enter (as `mktemp -d` makes them, and as
    /// `scripts/cluster` asks for): run as root, the server's own user cannot reach it, and the
    /// script keeps the server's files where it can, removing them at the stop.
    @Test func aServerStartsInAFolderBelowOneOnlyItsCallerMayEnterAndStopRemovesIt() throws {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("herald-pg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: parent,
            withIntermediateDirectories: false,
            attributes: [.posixPermissions: 0o700]
        )
        defer { try? FileManager.default.removeItem(at: parent) }
        let folder = parent.appendingPathComponent("postgres").path
        let url: String
        do {
            url = try Self.postgres(["start", folder])
        } catch {
            _ = try? Self.postgres(["stop", folder])
            throw error
        }
        let home = (try? String(contentsOfFile: folder + "/home", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            #expect(url.hasPrefix("postgresql://postgres@127.0.0.1:"))
            try TestDatabase.psql(url, "CREATE TABLE t (x int)")
            // The server's process id, where the benchmark reads it.
            #expect(FileManager.default.fileExists(atPath: folder + "/data/postmaster.pid"))
        } catch {
            _ = try? Self.postgres(["stop", folder])
            throw error
        }
        _ = try Self.postgres(["stop", folder])
        #expect(!FileManager.default.fileExists(atPath: folder))
        if let home {
            #expect(!FileManager.default.fileExists(atPath: home))
        }
        #expect(throws: TestFailure.self) { try TestDatabase.psql(url, "SELECT 1") }
    }
}
