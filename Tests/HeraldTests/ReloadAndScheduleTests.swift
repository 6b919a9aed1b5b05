import Foundation
import HeraldApplication
import HeraldEvents
import HeraldSchema
import HeraldServer
import HeraldStorage
import Logging
import Testing

@testable import HeraldScripting

@Suite struct CronTests {
    func t(_ iso: String) -> Timestamp { Timestamp(iso8601: iso)! }

    @Test func fieldsListsRangesAndSteps() throws {
        let every10 = try CronSchedule("*/10 * * * * *")
        #expect(every10.matches(t("2025-05-05T10:00:20Z")))
        #expect(!every10.matches(t("2025-05-05T10:00:21Z")))
        let workdayMornings = try CronSchedule("0 30 8-10 * * 1-5")
        #expect(workdayMornings.matches(t("2025-05-05T09:30:00Z")))  // a Monday
        #expect(!workdayMornings.matches(t("2025-05-04T09:30:00Z")))  // a Sunday
        #expect(!workdayMornings.matches(t("2025-05-05T11:30:00Z")))
        let list = try CronSchedule("5,15 0 0 1 1,7 *")
        #expect(list.matches(t("2025-07-01T00:00:15Z")))
        #expect(!list.matches(t("2025-02-01T00:00:15Z")))
        let sunday = try CronSchedule("0 0 12 * * 7")
        #expect(sunday.matches(t("2025-05-04T12:00:00Z")))
        let offsetStep = try CronSchedule("5/20 * * * * *")
        #expect(offsetStep.matches(t("2025-05-05T10:00:45Z")))
        #expect(!offsetStep.matches(t("2025-05-05T10:00:40Z")))
    }

    @Test func badExpressionsSayWhy() {
        #expect(throws: CronError.self) { try CronSchedule("* * * * *") }
        #expect((try? CronSchedule("60 * * * * *")) == nil)
        #expect((try? CronSchedule("* * * * 13 *")) == nil)
        #expect((try? CronSchedule("*/0 * * * * *")) == nil)
        #expect((try? CronSchedule("a * * * * *")) == nil)
    }

    @Test func schedulesNameExistingGlobalMethods() throws {
        func load(_ files: [String: String]) throws -> Schema {
            let directory = try TestDirectory(files: files)
            return try SchemaLoader(directory: directory.schema).load()
        }
        let schema = try load(["global/tick.js": "{}", "schedules.json": #"{"tick": "*/5 * * * * *"}"#])
        #expect(schema.schedules["tick"]?.expression == "*/5 * * * * *")
        #expect(throws: SchemaError.self) { try load(["schedules.json": #"{"ghost": "* * * * * *"}"#]) }
        do {
            _ = try load(["global/tick.js": "{}", "schedules.json": #"{"tick": "* * *"}"#])
            Issue.record("a three-field cron expression was accepted")
        } catch let error as SchemaError {
            #expect(error.file == "schedules.json")
            #expect(error.field == "tick")
        }
    }
}

/// Waits up to `seconds` for `condition`.
func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return false
}

@Suite struct ScheduleTests {
    @Test func scheduledMethodsRunAsSuperuser() async throws {
        let server = try await TestServer.start(
            try TestDirectory(files: [
                "Log.json": #"{"properties": {"message": "string"}}"#,
                "global/tick.js": "{ $.create('Log', {message: 'tick by ' + $.me.name}); }",
                "schedules.json": #"{"tick": "* * * * * *"}"#,
            ])
        )
        defer { Task { try? await server.stop() } }
        #expect(
            try await eventually {
                (try await server.get("/structr/rest/Log?message=tick%20by%20superuser").arrayValue?.count ?? 0) >= 2
            }
        )
    }
}

@Suite struct ReloadTests {
    @Test func editsTakeEffectWithoutRestartAndBadEditsAreRefused() async throws {
        let directory = try TestDirectory(files: [
            "Item.json": #"{"properties": {"name": "string"}}"#,
            "global/version.js": "{ return 1; }",
        ])
        let server = try await TestServer.start(directory) { $0.schemaReloadInterval = 100 }
        defer { Task { try? await server.stop() } }
        #expect(try await server.request(.POST, "/structr/rest/version").result == 1)

        try directory.write(["global/version.js": "{ return 2; }"])
        #expect(try await eventually { try await server.request(.POST, "/structr/rest/version").result == 2 })

        // A syntax error, a StructrScript error and a broken type file are each refused.
        try directory.write(["global/version.js": "{ return ( ; }"])
        try await Task.sleep(for: .milliseconds(600))
        let afterSyntaxError = try await server.request(.POST, "/structr/rest/version")
        #expect(afterSyntaxError.result == 2, "\(afterSyntaxError.status) \(afterSyntaxError.text)")
        try directory.write(["global/version.js": "${frobnicate()}"])
        try await Task.sleep(for: .milliseconds(600))
        #expect(try await server.request(.POST, "/structr/rest/version").result == 2)
        try directory.write(["global/version.js": "{ return 3; }", "Item.json": #"{"properties": {"name": "strnig"}}"#])
        try await Task.sleep(for: .milliseconds(600))
        #expect(try await server.request(.POST, "/structr/rest/version").result == 2)

        // A good edit of both: the new property is migrated and usable at once.
        try directory.write([
            "Item.json": #"{"properties": {"name": "string", "size": {"type": "integer", "default": 1}}}"#
        ])
        #expect(try await eventually { try await server.request(.POST, "/structr/rest/version").result == 3 })
        let id = try await server.create("Item", #"{"name": "n", "size": 4}"#)
        #expect(try await server.get("/structr/rest/Item/\(id)")["size"] == 4)
    }
}

@Suite struct SchedulerSkipTests {
    @Test func aSecondTickWhileTheFirstRunIsBusyStartsNothing() async throws {
        let directory = try TestDirectory(files: [
            "Log.json": #"{"properties": {"message": "string"}}"#,
            "global/slow.js":
                "{ let s = Date.now(); while (Date.now() - s < 800) {} $.create('Log', {message: 'slow'}); }",
            "schedules.json": #"{"slow": "* * * * * *"}"#,
        ])
        let schema = try SchemaLoader(directory: directory.schema).load()
        let storage = try TestDatabase.storage(directory)
        let migration = try await storage.migrate(to: schema, allowDestructive: false)
        let pool = EnginePool(configuration: .init(size: 2))
        let work = WorkRunner(
            model: DataModel(schema: schema, hasher: BcryptPasswordHasher(cost: 4)),
            generation: migration.generation,
            storage: storage,
            events: EventHub(),
            hooks: pool,
            logger: Logger(label: "test")
        )
        let scheduler = Scheduler(methods: MethodRunner(workRunner: work, pool: pool), logger: Logger(label: "test"))
        let second = Timestamp(iso8601: "2025-01-01T00:00:00Z")!
        let runs = { try await storage.read { tx in try tx.count(EntityQuery(type: "Log")) } }
        scheduler.tick(at: second)
        try await Task.sleep(for: .milliseconds(200))
        // The first run spins for 800 ms before it writes: this tick finds it busy.
        scheduler.tick(at: Timestamp(millisecondsSince1970: second.millisecondsSince1970 + 1000))
        // Generous waits: on a loaded machine a run's engine takes seconds to start; a pass
        // returns as soon as the count is there.
        #expect(try await eventually(30) { try await runs() == 1 })
        // The Log is the run's last act: once it is there, the run is over and the next tick runs.
        try await Task.sleep(for: .milliseconds(100))
        scheduler.tick(at: Timestamp(millisecondsSince1970: second.millisecondsSince1970 + 2000))
        #expect(try await eventually(30) { try await runs() == 2 })
        try await Task.sleep(for: .milliseconds(1200))
        #expect(try await runs() == 2)
        await pool.shutdown()
        try storage.close()
    }
}
