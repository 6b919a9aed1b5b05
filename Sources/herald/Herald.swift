import ArgumentParser
import Configuration
import Foundation
import HeraldHTTP
import HeraldSchema
import HeraldServer
import HeraldStorage
import Logging
import SystemPackage

@main
struct Herald: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald",
        abstract: "A small data-model server: REST over SQLite, JavaScript hooks, server-sent events.",
        subcommands: [Serve.self, Check.self, Backup.self, Generate.self],
        defaultSubcommand: Serve.self
    )
}

/// Options shared by every command; each may also come from `HERALD_*` or the config file.
struct CommonOptions: ParsableArguments {
    @Option(help: "The schema folder (HERALD_SCHEMA; default ./schema).")
    var schema: String?

    @Option(help: "A JSON config file (HERALD_CONFIG; default ./herald.json if present).")
    var config: String?

    /// Command line over environment over config file.
    func reader(extra: [AbsoluteConfigKey: ConfigValue] = [:]) async throws -> ConfigReader {
        var values = extra
        if let schema { values["schema"] = .init(.string(schema), isSecret: false) }
        let environment = EnvironmentVariablesProvider(
            secretsSpecifier: .dynamic { key, _ in
                // The database URL may hold a password.
                key.contains("PASSWORD") || key.contains("SECRET") || key.hasSuffix("_DATABASE")
            }
        ).prefixKeys(with: ["herald"])
        let file = config ?? ProcessInfo.processInfo.environment["HERALD_CONFIG"] ?? "herald.json"
        let explicit = config != nil || ProcessInfo.processInfo.environment["HERALD_CONFIG"] != nil
        return ConfigReader(providers: [
            InMemoryProvider(name: "command line", values: values),
            environment,
            try await FileProvider<JSONSnapshot>(filePath: FilePath(file), allowMissing: !explicit),
        ])
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start the server (the default command).")

    @OptionGroup var common: CommonOptions

    @Option(help: "The data folder with the SQLite database (HERALD_DATA; default ./data).")
    var data: String?

    @Option(
        help:
            "The database: sqlite (the file in the data folder, the default) or postgresql://user:password@host:port/dbname (HERALD_DATABASE, database)."
    )
    var database: String?

    @Option(help: "Static files served at / (HERALD_PUBLIC; default ./public).")
    var `public`: String?

    @Option(help: "The address to listen on (HERALD_HOST; default 127.0.0.1).")
    var host: String?

    @Option(help: "The port to listen on (HERALD_PORT; default 8082).")
    var port: Int?

    @Flag(help: "Apply schema changes that lose data (HERALD_ALLOW_DESTRUCTIVE_MIGRATIONS).")
    var allowDestructiveMigrations = false

    @Flag(help: "Refuse event types that schema/events.json does not declare (HERALD_EVENTS_REQUIRE_DECLARED).")
    var requireDeclaredEvents = false

    @Option(help: "A PEM certificate chain: serve HTTPS with HTTP/2 (HERALD_TLS_CERT, tls.cert; needs --tls-key).")
    var tlsCert: String?

    @Option(help: "The certificate's PEM private key (HERALD_TLS_KEY, tls.key).")
    var tlsKey: String?

    func run() async throws {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        if let data { values["data"] = .init(.string(data), isSecret: false) }
        if let host { values["host"] = .init(.string(host), isSecret: false) }
        if let database { values["database"] = .init(.string(database), isSecret: true) }
        if let `public` { values["public"] = .init(.string(`public`), isSecret: false) }
        if let port { values["port"] = .init(.int(port), isSecret: false) }
        if allowDestructiveMigrations { values["allowDestructiveMigrations"] = .init(.bool(true), isSecret: false) }
        if requireDeclaredEvents { values["events.requireDeclared"] = .init(.bool(true), isSecret: false) }
        if let tlsCert { values["tls.cert"] = .init(.string(tlsCert), isSecret: false) }
        if let tlsKey { values["tls.key"] = .init(.string(tlsKey), isSecret: false) }
        let configuration = HeraldConfiguration(reader: try await common.reader(extra: values))
        let level = configuration.logLevel
        LoggingSystem.bootstrap { label in StandardErrorLogHandler(label: label, level: level) }
        let logger = Logger(label: "herald")
        do {
            try await HeraldServer.run(configuration: configuration, logger: logger)
        } catch let error as SchemaError {
            logger.critical("schema error: \(error)")
            throw ExitCode(1)
        } catch let error as ConfigurationError {
            logger.critical("configuration error: \(error)")
            throw ExitCode(1)

        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate the schema folder and list its types and methods as JSON; with --data, check the database."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Run SQLite's integrity check on the database in this data folder instead.")
    var data: String?

    func run() async throws {
        if let data {
            do {
                let problems = try SQLiteStorage.integrityCheck(directory: URL(fileURLWithPath: data))
                guard problems == ["ok"] else {
                    FileHandle.standardError.write(
                        Data("database damaged:\n\(problems.joined(separator: "\n"))\n".utf8)
                    )
                    throw ExitCode(1)
                }
                print("ok")
                return
            } catch let error as StorageError {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(1)
            }
        }
        let configuration = HeraldConfiguration(reader: try await common.reader())
        do {
            let schema = try SchemaLoader(directory: URL(fileURLWithPath: configuration.schemaDirectory)).load()
            print(schema.listing.jsonString)
        } catch {
            FileHandle.standardError.write(Data("schema error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write code made from the schema folder.",
        subcommands: [GenerateTypeScript.self]
    )
}

struct GenerateTypeScript: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "typescript",
        abstract: "Write a TypeScript client: interfaces, REST functions, typed events, channels and live queries."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "The file to write the module to.")
    var out: String

    func run() async throws {
        let configuration = HeraldConfiguration(reader: try await common.reader())
        let schema: Schema
        do {
            schema = try SchemaLoader(directory: URL(fileURLWithPath: configuration.schemaDirectory)).load()
        } catch {
            FileHandle.standardError.write(Data("schema error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        do {
            try Data(ClientModule(schema: schema, language: .typeScript).source.utf8)
                .write(to: URL(fileURLWithPath: out), options: .atomic)
        } catch {
            FileHandle.standardError.write(Data("cannot write \(out): \(error.localizedDescription)\n".utf8))
            throw ExitCode(1)
        }
        print("wrote \(out): \(schema.types.count) types, \(schema.events.count) events")
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the database consistently (SQLite's online backup), also while the server runs."
    )

    @Option(help: "The data folder holding herald.sqlite.")
    var data: String

    @Option(help: "The file to write the copy to (replaced if it exists).")
    var out: String

    func run() async throws {
        do {
            try SQLiteStorage.backup(directory: URL(fileURLWithPath: data), to: URL(fileURLWithPath: out))
            print("backed up \(data)/\(SQLiteStorage.fileName) to \(out)")
        } catch {
            FileHandle.standardError.write(Data("backup failed: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
