import Foundation
import HeraldApplication
import HeraldSchema
import HeraldScripting
import HeraldStorage
import Logging
import ServiceLifecycle

/// Watches the schema folder and puts edits in force without a restart.
///
/// A changed folder is loaded, every script compiled, and changed types migrated (additively
/// unless destructive migrations are allowed); only then does the new schema serve. A bad edit
/// is logged and the last good schema keeps serving.
struct SchemaReloader: Service {
    let directory: URL
    let interval: Duration
    let methods: MethodRunner
    let storage: any StorageBackend
    let hasher: any PasswordHasher
    let allowDestructive: Bool
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { await watch() }
    }

    func watch() async {
        var fingerprint = Self.fingerprint(of: directory)
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            var next = Self.fingerprint(of: directory)
            guard next != fingerprint else { continue }
            // Wait until the folder holds still, so a file caught half-written (an editor that
            // truncates, then writes) is not loaded.
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.settle)
                let settled = Self.fingerprint(of: directory)
                if settled == next { break }
                next = settled
            }
            fingerprint = next
            await reload()
        }
    }

    /// How long the folder must stay unchanged before a reload.
    static let settle: Duration = .milliseconds(150)

    func reload() async {
        do {
            let schema = try SchemaLoader(directory: directory).load()
            try await methods.checkScripts(of: schema)
            // Every reload migrates, scripts-only edits too: each starts a schema generation,
            // and a transaction uses the model of its own generation.
            let migration = try await storage.migrate(to: schema, allowDestructive: allowDestructive)
            methods.workRunner.install(DataModel(schema: schema, hasher: hasher), generation: migration.generation)
            methods.workRunner.schemaStatus.loaded(generation: migration.generation)
            logger.info("schema reloaded", metadata: ["folder": "\(directory.path)"])
        } catch {
            logger.error("schema change refused; the last good version keeps serving: \(error)")
            methods.workRunner.schemaStatus.refused(error)
        }
    }

    /// Paths, sizes and modification times of every file below `directory`.
    static func fingerprint(of directory: URL) -> [String] {
        guard
            let enumerator = FileManager.default.enumerator(
                at: directory,
                includingPropertiesForKeys: [.contentModificationDateKey, .fileSizeKey]
            )
        else { return [] }
        var entries: [String] = []
        for case let url as URL in enumerator {
            let values = try? url.resourceValues(forKeys: [.contentModificationDateKey, .fileSizeKey])
            let modified = values?.contentModificationDate?.timeIntervalSince1970 ?? 0
            entries.append("\(url.path)|\(values?.fileSize ?? -1)|\(modified)")
        }
        return entries.sorted()
    }
}

/// Runs the scheduler until graceful shutdown.
struct SchedulerService: Service {
    let scheduler: Scheduler

    func run() async throws {
        await cancelWhenGracefulShutdown { await scheduler.run() }
    }
}
