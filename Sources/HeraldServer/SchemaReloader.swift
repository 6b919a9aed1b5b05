import Foundation
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
    let runtime: ScriptRuntime
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
            try await runtime.checkScripts(of: schema)
            if Self.structure(of: schema) != Self.structure(of: runtime.schema) {
                _ = try await storage.migrate(to: schema, allowDestructive: allowDestructive)
            }
            runtime.replaceModel(DataModel(schema: schema, hasher: hasher))
            logger.info("schema reloaded", metadata: ["folder": "\(directory.path)"])
        } catch {
            logger.error("schema change refused; the last good version keeps serving: \(error)")
        }
    }

    /// Types and relationships without their scripts: what storage depends on.
    static func structure(of schema: Schema) -> [AnyHashable] {
        let types = schema.types.values.map { type -> TypeDefinition in
            var type = type
            type.methods = []
            return type
        }
        return [AnyHashable(types), AnyHashable(schema.relationships)]
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
