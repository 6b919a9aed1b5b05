import Foundation
import HeraldHTTP
import HeraldSchema
import Hummingbird
import HummingbirdCore

/// The parsers `scripts/fuzz` feeds with libFuzzer: each must return or throw its own error for
/// any input, never crash.
enum FuzzTarget: String, CaseIterable {
    case json
    case structrScript = "structrscript"
    case cron
    case query

    /// The target named by `HERALD_FUZZ_TARGET`.
    static let current: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["HERALD_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(
                Data("set HERALD_FUZZ_TARGET to one of \(allCases.map(\.rawValue).joined(separator: ", "))\n".utf8)
            )
            exit(2)
        }
        return target
    }()

    /// A type with every property kind and relationship, for the query parser.
    static let queryType: TypeDefinition = {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("herald-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let project = """
            {"properties": {"name": "string", "priority": "integer", "budget": "number", "done": "boolean",
              "due": "date", "status": {"type": "enum", "values": ["open", "closed"]}, "meta": "json"},
             "relationships": {"lead": {"to": "User", "cardinality": "one"}, "tags": {"to": "Tag"}}}
            """
        try? Data(project.utf8).write(to: folder.appendingPathComponent("Project.json"))
        try? Data(#"{"properties": {"name": "string"}}"#.utf8).write(to: folder.appendingPathComponent("Tag.json"))
        defer { try? FileManager.default.removeItem(at: folder) }
        guard let schema = try? SchemaLoader(directory: folder).load(), let type = schema.types["Project"] else {
            fatalError("the fuzz schema does not load")
        }
        return type
    }()

    /// Runs one input through the parser.
    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .json:
            _ = try? JSONValue(parsing: bytes)
        case .structrScript:
            let text = String(decoding: bytes, as: UTF8.self)
            _ = try? StructrScript.translate(text)
            _ = StructrScript.expression(in: text)
        case .cron:
            if let schedule = try? CronSchedule(String(decoding: bytes, as: UTF8.self)) {
                _ = schedule.matches(Timestamp(millisecondsSince1970: 1_700_000_000_000))
            }
        case .query:
            let uri = URI("/structr/rest/Project?" + String(decoding: bytes, as: UTF8.self))
            let parameters = uri.queryParameters.map { (String($0.key), String($0.value)) }
            _ = try? RESTQuery(type: Self.queryType, parameters: parameters)
        }
    }
}

#if HERALD_FUZZ
    /// libFuzzer's entry point (the binary is built with `-sanitize=fuzzer`).
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        FuzzTarget.current.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }

    /// libFuzzer's driver, for executables that bring their own `main`.
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// The executable's `main` as SwiftPM names it: hands the command line to libFuzzer.
    @_cdecl("herald_fuzz_main")
    public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
        var argc = argc
        var argv = argv
        return runFuzzerDriver(&argc, &argv) { data, size in fuzzOne(data, size) }
    }
#else
    /// Without libFuzzer: runs the files named on the command line through the target, so a
    /// crash input can be replayed under a debugger.
    @main
    struct Replay {
        static func main() throws {
            for path in CommandLine.arguments.dropFirst() {
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                data.withUnsafeBytes { FuzzTarget.current.run($0) }
                print("\(path): ok")
            }
        }
    }
#endif
