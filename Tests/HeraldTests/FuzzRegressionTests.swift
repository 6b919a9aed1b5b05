import Foundation
import HeraldSchema
import Testing

/// Inputs for the parsers `scripts/fuzz` targets: its seeds and the shapes that break parsers
/// (deep nesting, huge numbers, odd ranges). A crash found by fuzzing is added here, so it stays
/// fixed; none has been found yet. Each parser must answer or throw its own error.
@Suite struct FuzzRegressionTests {
    static let seeds = repositoryRoot.appendingPathComponent("bench/fuzz-seeds")

    static func seedFiles(_ target: String) throws -> [String] {
        let folder = seeds.appendingPathComponent(target)
        return try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().map {
            try String(contentsOf: folder.appendingPathComponent($0), encoding: .utf8)
        }
    }

    @Test func jsonParserAnswersEveryShape() throws {
        let inputs =
            try Self.seedFiles("json") + [
                String(repeating: "[", count: 100_000), String(repeating: "{\"a\":", count: 5000),
                "1e999999", "-0.0e-999999", "123456789012345678901234567890", "\"\\ud800\"", "\"\\u0000\"", "",
                "[1,]", "{\"a\" 1}", "\u{FEFF}{}", "nul", String(repeating: "9", count: 10_000),
            ]
        for input in inputs {
            _ = try? JSONValue(parsing: input)
            _ = try? JSONValue(parsing: Array(input.utf8))
        }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: String(repeating: "[", count: 300)) }
    }

    @Test func structrScriptAnswersEveryShape() throws {
        let inputs =
            try Self.seedFiles("structrscript") + [
                "${", "${}", "${" + String(repeating: "(", count: 10_000) + "}",
                "${concat('" + String(repeating: "\\", count: 1000) + "')}", "${a.b.c.d.e.f()()()}", "${'unterminated}",
                "${if(,,)}", "${each(find('T'), each(data, each(data, data)))}",
            ]
        for input in inputs {
            _ = try? StructrScript.translate(input)
            _ = StructrScript.expression(in: input)
        }
        #expect(throws: StructrScript.Error.self) { try StructrScript.translate("concat('a',") }
    }

    @Test func cronParserAnswersEveryShape() throws {
        let inputs =
            try Self.seedFiles("cron") + [
                "", "* * * * *", "* * * * * * *", "99999999999999999999 * * * * *", "*/0 * * * * *", "5-1 * * * * *",
                "-1 * * * * *", "*/99999999999999999999 * * * * *", "1,,2 * * * * *", "60 60 24 32 13 8",
            ]
        for input in inputs {
            if let schedule = try? CronSchedule(input) {
                _ = schedule.matches(Timestamp(millisecondsSince1970: 1_700_000_000_000))
            }
        }
        #expect(throws: CronError.self) { try CronSchedule("*/0 * * * * *") }
    }
}
