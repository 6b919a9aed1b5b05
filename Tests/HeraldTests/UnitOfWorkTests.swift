import Foundation
import HeraldApplication
import HeraldEvents
import HeraldSchema
import HeraldScripting
import HeraldStorage
import Logging
import Synchronization
import Testing

/// The unit of work: hookless writes run without an engine, and each transaction keeps the
/// schema its tables were migrated to.
@Suite struct UnitOfWorkTests {
    /// Counts how often work is handed to the real engine pool.
    final class CountingHookThreads: HookThreads {
        let pool: EnginePool
        let count = Atomic<Int>(0)

        init(pool: EnginePool) { self.pool = pool }

        func withRunner<T: Sendable>(_ body: @escaping @Sendable (any LifecycleHookRunner) throws -> T)
            async throws -> T
        {
            count.add(1, ordering: .relaxed)
            return try await pool.withRunner(body)
        }
    }

    final class Flag: Sendable {
        let value = Atomic<Bool>(true)
    }

    static let files = [
        "Plain.json": #"{"properties": {"name": "string"}}"#,
        "Hooked.json": #"{"properties": {"name": "string", "seen": "boolean"}}"#,
        "Hooked/onCreate.js": "{ $.this.seen = true; }",
        "Hooked/afterSave.js": "{ $.broadcastEvent('saved', $.this.name); }",
    ]

    /// A read whose snapshot began before a commit took a user out of a group, and which asks
    /// for the user's groups (or the group's users) after that commit cleared the cache, must
    /// not store what it saw: the user would keep the group's rights, and get its events,
    /// until the next change to groups or users.
    @Test func aReadThatBeganBeforeAMembershipChangeDoesNotCacheTheOldGroups() async throws {
        let directory = try TestDirectory(files: Self.files)
        let schema = try SchemaLoader(directory: directory.schema).load()
        let storage = try TestDatabase.storage(directory)
        let migration = try await storage.migrate(to: schema, allowDestructive: false)
        let work = WorkRunner(
            model: DataModel(schema: schema, hasher: BcryptPasswordHasher(cost: 4)),
            generation: migration.generation,
            storage: storage,
            events: EventHub(),
            hooks: EnginePool(configuration: .init(size: 1)),
            logger: Logger(label: "test")
        )
        let user = try await work.create("User", [["name": "una"]], caller: .superuser)[0]
        let group = try await work.create("Group", [["name": "crew", "members": [.string(user)]]], caller: .superuser)[
            0
        ]
        let una = Caller.user(id: user, name: "una", isAdmin: false)
        #expect(try await work.read(una) { try $0.scope.principals } == [user, group])

        let snapshotTaken = DispatchSemaphore(value: 0)
        let removed = DispatchSemaphore(value: 0)
        let stale = Task {
            try await work.read(una) { unit -> [String] in
                // The snapshot: the transaction's first read, before the group changes.
                _ = try unit.list(EntityQuery(type: "Plain"), as: AccessScope(caller: .superuser, principals: []))
                snapshotTaken.signal()
                removed.wait()
                // Both caches: the user's groups, and the group's users (a `sendEvent` to it).
                let members = try unit.users(in: [EntityReference(type: "Group", id: group)])
                return try unit.scope.principals + members.sorted()
            }
        }
        await Task.detached { snapshotTaken.wait() }.value
        _ = try await work.update("Group", id: group, ["members": []], caller: .superuser)
        removed.signal()
        // That read still sees its snapshot, as it should...
        #expect(try await stale.value == [user, group, user])
        // ...but what it saw did not stay in the cache.
        #expect(try await work.read(una) { try $0.scope.principals } == [user])
        #expect(try await work.read(una) { try $0.users(in: [EntityReference(type: "Group", id: group)]) } == [])
        try storage.close()
    }

    @Test func writesWithoutHooksNeverTakeAnEngineAndWritesWithHooksDo() async throws {
        let directory = try TestDirectory(files: Self.files)
        let schema = try SchemaLoader(directory: directory.schema).load()
        let storage = try TestDatabase.storage(directory)
        let migration = try await storage.migrate(to: schema, allowDestructive: false)
        let pool = EnginePool(configuration: .init(size: 1))
        let threads = CountingHookThreads(pool: pool)
        let work = WorkRunner(
            model: DataModel(schema: schema, hasher: BcryptPasswordHasher(cost: 4)),
            generation: migration.generation,
            storage: storage,
            events: EventHub(),
            hooks: threads,
            logger: Logger(label: "test")
        )
        let plain = try await work.create("Plain", [["name": "a"], ["name": "b"]], caller: .superuser)
        _ = try await work.update("Plain", id: plain[0], ["name": "c"], caller: .superuser)
        try await work.delete("Plain", id: plain[1], caller: .superuser)
        #expect(threads.count.load(ordering: .relaxed) == 0)

        let hooked = try await work.create("Hooked", [["name": "h"]], caller: .superuser)
        #expect(threads.count.load(ordering: .relaxed) == 1)
        let seen = try await storage.read { tx in try tx.fetch(type: "Hooked", id: hooked[0])?.values["seen"] }
        #expect(seen == true)
        _ = try await work.update("Hooked", id: hooked[0], ["name": "i"], caller: .superuser)
        #expect(threads.count.load(ordering: .relaxed) == 2)
        await pool.shutdown()
        try storage.close()
    }

    @Test func aHooklessCreateAnswersWhileEveryEngineIsBusy() async throws {
        let directory = try TestDirectory(files: [
            "Plain.json": #"{"properties": {"name": "string"}}"#,
            "global/spin.js": "{ let s = Date.now(); while (Date.now() - s < 6000) {} return 'done'; }",
        ])
        let server = try await TestServer.start(directory) {
            $0.scriptEngines = 1
            $0.scriptTimeLimit = 20_000
        }
        let spinning = Flag()
        let spin = Task {
            defer { spinning.value.store(false, ordering: .sequentiallyConsistent) }
            return try await server.request(.POST, "/structr/rest/spin", body: "{}")
        }
        try await Task.sleep(for: .milliseconds(300))  // the only engine is spinning now
        _ = try await server.create("Plain", #"{"name": "while busy"}"#)
        // Through an engine the create would have waited for the spin to end.
        let stillSpinning = spinning.value.load(ordering: .sequentiallyConsistent)
        #expect(stillSpinning, "the create waited for the busy engine")
        let spun = try await spin.value
        #expect(spun.status == 200)
        try await server.stop()
    }

    /// A store with one type, `Plain`, migrated, and a work runner over it.
    static func plainStore() async throws -> (TestDirectory, any StorageBackend, WorkRunner, MigrationReport) {
        let directory = try TestDirectory(files: ["Plain.json": #"{"properties": {"name": "string"}}"#])
        let schema = try SchemaLoader(directory: directory.schema).load()
        let storage = try TestDatabase.storage(directory)
        let migration = try await storage.migrate(to: schema, allowDestructive: false)
        let work = WorkRunner(
            model: DataModel(schema: schema, hasher: BcryptPasswordHasher(cost: 4)),
            generation: migration.generation,
            storage: storage,
            events: EventHub(),
            hooks: EnginePool(configuration: .init(size: 1)),
            logger: Logger(label: "test")
        )
        return (directory, storage, work, migration)
    }

    /// The schema in `directory` with a type `Later` added.
    static func schemaWithLater(_ directory: TestDirectory) throws -> Schema {
        try #"{"properties": {"title": "string"}}"#.write(
            to: directory.schema.appendingPathComponent("Later.json"),
            atomically: true,
            encoding: .utf8
        )
        return try SchemaLoader(directory: directory.schema).load()
    }

    @Test func aTransactionKeepsItsSchemaWhileAMigrationCommits() async throws {
        let (directory, storage, work, migration) = try await Self.plainStore()
        _ = try await work.create("Plain", [["name": "old"]], caller: .superuser)
        try FileManager.default.createDirectory(at: directory.schema, withIntermediateDirectories: true)
        try #"{"properties": {"name": "string", "size": "integer"}}"#.write(
            to: directory.schema.appendingPathComponent("Plain.json"),
            atomically: true,
            encoding: .utf8
        )
        let second = try Self.schemaWithLater(directory)

        // A read whose snapshot began before the migration (at its first statement) keeps the
        // old schema for its whole life, and its rows decode with it, even after the migration
        // committed and was installed.
        let began = DispatchSemaphore(value: 0)
        let migrated = DispatchSemaphore(value: 0)
        let held = Task {
            try await work.read(.superuser) { work -> (Int64, Bool, Bool, [String]) in
                let before = work.tx.schemaGeneration
                _ = try work.tx.metadata("snapshot")
                began.signal()
                migrated.wait()
                let names = try work.tx.fetch(EntityQuery(type: "Plain")).map { $0.values["name"]?.stringValue ?? "" }
                return (
                    before, work.model.schema.types["Later"] == nil, work.tx.schema.types["Later"] == nil, names
                )
            }
        }
        try await offPool { began.wait() }
        let next = try await storage.migrate(to: second, allowDestructive: false)
        work.install(DataModel(schema: second, hasher: BcryptPasswordHasher(cost: 4)), generation: next.generation)
        migrated.signal()
        let (generation, modelIsOld, tablesAreOld, names) = try await held.value
        #expect(generation == migration.generation)
        #expect(next.generation == migration.generation + 1)
        #expect(modelIsOld)
        #expect(tablesAreOld)
        #expect(names == ["old"])

        // Work that begins after it sees the new schema, model and tables together.
        let after = try await work.read(.superuser) { work in
            (
                work.tx.schemaGeneration, work.model.schema.types["Later"] != nil,
                try work.tx.count(EntityQuery(type: "Later"))
            )
        }
        #expect(after.0 == next.generation)
        #expect(after.1)
        #expect(after.2 == 0)
        try storage.close()
    }

    @Test func aWriteKnowsWhatItStoredAndAnAfterHookStartsFromIt() async throws {
        let (_, storage, _, _) = try await Self.plainStore()
        let id = EntityID.generate()
        let now = "2026-12-08T00:00:00.000Z"
        let entity = StoredEntity(
            type: "Plain",
            id: id,
            values: ["name": "first", "createdDate": .string(now), "lastModifiedDate": .string(now)]
        )
        // The state a write left is the row as stored (every column, in stored form, the
        // defaults the database filled in included), as a read in the same transaction gives
        // it, and it survives the transaction.
        let (written, readBack) = try await storage.write { tx in
            try tx.insert(entity)
            try tx.update(type: "Plain", id: id, values: ["name": "second"])
            return (tx.written(type: "Plain", id: id), try tx.fetch(type: "Plain", id: id))
        }
        let stored = try await storage.read { tx in try tx.fetch(type: "Plain", id: id) }
        #expect(written?.value == stored)
        #expect(readBack == stored)
        #expect(stored?.values["name"] == "second")
        #expect(stored?.values["createdDate"] == .string(now))
        #expect(stored?.values["visibleToPublicUsers"] != nil && stored?.values["visibleToPublicUsers"] != .null)
        // Nothing read or written: nothing known.
        #expect(try await storage.read { tx in tx.written(type: "Plain", id: id) == nil })

        // A transaction that assumes a state reads that, not the row (so an after… hook's
        // `$.this` costs no read); a write of its own replaces it.
        var assumed = try #require(stored)
        assumed.values["name"] = "assumed"
        let (seen, afterWrite) = try await storage.write { [assumed] tx in
            tx.assume(assumed)
            let seen = try tx.fetch(type: "Plain", id: id)
            try tx.update(type: "Plain", id: id, values: ["name": "third"])
            return (seen, try tx.fetch(type: "Plain", id: id))
        }
        #expect(seen?.values["name"] == "assumed")
        #expect(afterWrite?.values["name"] == "third")

        // Deleting a user clears its ownership of other rows in the database (ON DELETE SET
        // NULL): a row read before reads that change too.
        let userID = EntityID.generate()
        let user = StoredEntity(
            type: "User",
            id: userID,
            values: ["name": "owner", "createdDate": .string(now), "lastModifiedDate": .string(now)]
        )
        let owner = try await storage.write { [user] tx in
            try tx.insert(user)
            try tx.update(type: "Plain", id: id, values: ["owner": .string(userID)])
            _ = try tx.fetch(type: "Plain", id: id)
            try tx.delete(type: "User", id: userID)
            return try tx.fetch(type: "Plain", id: id)?.values["owner"]
        }
        #expect(owner == .null)

        // A deleted object reads as gone in its transaction.
        let gone = try await storage.write { tx in
            _ = try tx.fetch(type: "Plain", id: id)
            try tx.delete(type: "Plain", id: id)
            return try tx.fetch(type: "Plain", id: id)
        }
        #expect(gone == nil)
        try storage.close()
    }

    @Test func workWhoseFirstStatementFollowsAMigrationRunsAgainWithTheNewSchema() async throws {
        let (directory, storage, work, migration) = try await Self.plainStore()
        _ = try await work.create("Plain", [["name": "old"]], caller: .superuser)
        let second = try Self.schemaWithLater(directory)
        // The unit of work takes its schema before its first statement; the migration commits
        // in between. Its snapshot then has the new tables, so it must not keep the old schema.
        let began = DispatchSemaphore(value: 0)
        let migrated = DispatchSemaphore(value: 0)
        let runs = Atomic(0)
        let held = Task {
            try await work.read(.superuser) { work -> (Int64, Bool, Int) in
                if runs.add(1, ordering: .relaxed).newValue == 1 {
                    began.signal()
                    migrated.wait()
                }
                let later = work.tx.schema.types["Later"] != nil
                return (work.tx.schemaGeneration, later, try work.tx.count(EntityQuery(type: "Plain")))
            }
        }
        try await offPool { began.wait() }
        let next = try await storage.migrate(to: second, allowDestructive: false)
        migrated.signal()
        let (generation, seesLater, count) = try await held.value
        #expect(count == 1)
        // Whichever schema it ran with, it is the one of its snapshot's tables.
        #expect(seesLater == (generation == next.generation))
        if storage is PostgreSQLStorage {
            // PostgreSQL's snapshot begins at the first statement, which checks the schema
            // generation the work took: it was the old one, so the work ran again.
            #expect(generation == next.generation)
            #expect(runs.load(ordering: .relaxed) == 2)
        } else {
            // SQLite's begins as the work takes its schema.
            #expect(generation == migration.generation)
        }
        try storage.close()
    }

    @Test func aMigrationCommittedButNotYetInstalledStillPairsTheNewModelWithTheNewTables() async throws {
        let (directory, storage, work, _) = try await Self.plainStore()
        let second = try Self.schemaWithLater(directory)
        _ = try await storage.migrate(to: second, allowDestructive: false)
        // The reload has not called `install` yet: the routing model is still the old one...
        #expect(work.model.schema.types["Later"] == nil)
        // ...but a transaction on the new tables gets the model of their schema.
        let ids = try await work.write(.superuser, hooks: false) { work in
            try work.create("Later", ["title": "new"]).id
        }
        #expect(EntityID.isValid(ids))
        #expect(work.model.schema.types["Later"] != nil)
        try storage.close()
    }
}
