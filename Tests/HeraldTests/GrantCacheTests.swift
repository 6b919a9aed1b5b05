import Foundation
import HeraldApplication
import HeraldHTTP
import HeraldSchema
import HeraldStorage
import Synchronization
import Testing

/// The resource grants' cache: a thousand streams opening on a fresh server wait for one read of
/// the grants, not a thousand.
@Suite struct GrantCacheTests {
    /// A real storage whose reads are counted and, until the test opens the gate, held.
    final class GatedStorage: StorageBackend {
        let inner: any StorageBackend
        let reads = Atomic<Int>(0)
        private let gate = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

        init(_ inner: any StorageBackend) { self.inner = inner }

        func open() {
            let waiting = gate.withLock { gate in
                gate.open = true
                defer { gate.waiting = [] }
                return gate.waiting
            }
            for continuation in waiting { continuation.resume() }
        }

        func migrate(to schema: Schema, allowDestructive: Bool) async throws -> MigrationReport {
            try await inner.migrate(to: schema, allowDestructive: allowDestructive)
        }

        func read<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
            reads.add(1, ordering: .relaxed)
            await withCheckedContinuation { continuation in
                let wait = gate.withLock { gate in
                    if gate.open { return false }
                    gate.waiting.append(continuation)
                    return true
                }
                if !wait { continuation.resume() }
            }
            return try await inner.read(body)
        }

        func write<T: Sendable>(_ body: @escaping @Sendable (any StorageTransaction) throws -> T) async throws -> T {
            try await inner.write(body)
        }

        func writeBlocking<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
            try inner.writeBlocking(body)
        }

        func readBlocking<T>(_ body: (any StorageTransaction) throws -> T) throws -> T {
            try inner.readBlocking(body)
        }

        func close() throws { try inner.close() }
    }

    final class Answered: Sendable {
        let count = Atomic<Int>(0)
    }

    @Test func callersOnAColdCacheShareOneReadOfTheGrants() async throws {
        let directory = try TestDirectory()
        let schema = try SchemaLoader(directory: directory.schema).load()
        let storage = GatedStorage(try TestDatabase.storage(directory))
        defer { try? storage.close() }
        _ = try await storage.migrate(to: schema, allowDestructive: false)
        let model = DataModel(schema: schema, hasher: BcryptPasswordHasher(cost: 4))
        _ = try await storage.write { tx in try model.loadInitialData(in: tx) }
        let policy = ResourceAccessPolicy(storage: storage)
        let stream = RESTOperation(method: .get, signature: "_eventSource")
        let reader = Caller.user(id: "a11ce000000000000000000000000001", name: "alice", isAdmin: false)

        let callers = 200
        let answered = Answered()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<callers {
                group.addTask {
                    try await policy.authorize(reader, stream)
                    answered.count.add(1, ordering: .relaxed)
                }
            }
            // Every caller has asked (or been given the read under way) before the read answers.
            while storage.reads.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(5)) }
            try await Task.sleep(for: .milliseconds(300))
            let answeredBeforeTheRead = answered.count.load(ordering: .relaxed)
            #expect(answeredBeforeTheRead == 0)
            storage.open()
            try await group.waitForAll()
        }
        let (allAnswered, reads) = (answered.count.load(ordering: .relaxed), storage.reads.load(ordering: .relaxed))
        #expect(allAnswered == callers)
        #expect(reads == 1)

        // Cached: no read at all.
        try await policy.authorize(reader, stream)
        let readsWhenCached = storage.reads.load(ordering: .relaxed)
        #expect(readsWhenCached == 1)

        // A change to the grants makes the next caller read them again, once.
        policy.invalidate()
        try await policy.authorize(reader, stream)
        try await policy.authorize(reader, stream)
        let readsAfterAChange = storage.reads.load(ordering: .relaxed)
        #expect(readsAfterAChange == 2)
    }
}
