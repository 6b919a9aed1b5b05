import HeraldApplication
import HeraldSchema
import HeraldStorage
import Logging
import Synchronization

/// Runs the global methods named in `schedules.json` on their cron schedules, as the superuser.
///
/// Every second it checks the schedules of the schema in force, so a reload takes effect at
/// once. A run still busy when its next time comes is skipped, and the skip is logged. On a
/// database several nodes share, each scheduled time runs on one node only: the first to claim it.
public struct Scheduler: Sendable {
    let methods: MethodRunner
    let logger: Logger
    private let busy = BusySet()

    public init(methods: MethodRunner, logger: Logger) {
        self.methods = methods
        self.logger = logger
    }

    /// Ticks once a second until the task is cancelled.
    public func run() async {
        var last = Int64.min
        while !Task.isCancelled {
            let now = Timestamp.now
            let second = now.millisecondsSince1970 / 1000
            if second != last {
                last = second
                tick(at: Timestamp(millisecondsSince1970: second * 1000))
            }
            let wait = 1000 - now.millisecondsSince1970 % 1000
            try? await Task.sleep(for: .milliseconds(wait + 1))
        }
    }

    func tick(at time: Timestamp) {
        let schema = methods.workRunner.model.schema
        for (name, schedule) in schema.schedules.sorted(by: { $0.key < $1.key }) where schedule.matches(time) {
            guard let method = schema.globalMethods.first(where: { $0.name == name }) else { continue }
            guard busy.insert(name) else {
                logger.warning("scheduled run skipped: the previous run is still busy", metadata: ["method": "\(name)"])
                continue
            }
            let methods = self.methods
            let logger = self.logger
            let busy = self.busy
            let claim = "schedule:\(time.millisecondsSince1970):\(name)"
            Task {
                defer { busy.remove(name) }
                do {
                    // On a database several nodes share, one node runs each scheduled time.
                    if methods.workRunner.storage is any SharedStorageBackend {
                        let forget = Timestamp(millisecondsSince1970: time.millisecondsSince1970 - 3_600_000)
                        let mine = try await methods.workRunner.storage.write { tx in
                            try tx.claim(claim, forgetBefore: forget)
                        }
                        guard mine else { return }
                    }
                    _ = try await methods.call(
                        method: method,
                        id: nil,
                        arguments: .object([:]),
                        request: [:],
                        caller: .superuser
                    )
                } catch {
                    logger.error("scheduled run failed", metadata: ["method": "\(name)", "error": "\(error)"])
                }
            }
        }
    }
}

final class BusySet: Sendable {
    private let names = Mutex<Set<String>>([])

    /// Marks `name` busy; false if it already was.
    func insert(_ name: String) -> Bool { names.withLock { $0.insert(name).inserted } }

    func remove(_ name: String) { _ = names.withLock { $0.remove(name) } }
}
