import HeraldEvents
import HeraldSchema
import HeraldStorage
import Logging

/// On a database several nodes share: which users have open streams on this node, written to
/// the database every ``interval`` so that `$.sendEvent` on any node can answer whether the
/// event will reach someone. A node that stops writing (it died) counts as gone after ``expiry``.
public struct Presence: Sendable {
    /// How often a node writes its presence.
    public static let interval: Duration = .seconds(1)
    /// How long the presence of a node that stopped writing counts.
    public static let expiry: Duration = .seconds(10)

    let workRunner: WorkRunner
    let logger: Logger

    public init(workRunner: WorkRunner, logger: Logger) {
        self.workRunner = workRunner
        self.logger = logger
    }

    /// Writes the changes every ``interval`` until the task is cancelled, then forgets this
    /// node's presence.
    public func run() async {
        let (node, hub, storage) = (workRunner.nodeID, workRunner.events, workRunner.storage)
        var written: Set<String> = []
        var first = true
        while !Task.isCancelled {
            let now = hub.usersWithStreams
            let (adding, removing) = (now.subtracting(written), written.subtracting(now))
            let time = Timestamp.now
            let expired = Timestamp(
                millisecondsSince1970: time.millisecondsSince1970 - Self.expiry.components.seconds * 1000
            )
            do {
                // The first write after start-up replaces whatever an earlier run left.
                let clear = first
                try await storage.write { tx in
                    if clear { try tx.forgetPresence(node: node) }
                    try tx.recordPresence(
                        node: node,
                        adding: adding,
                        removing: removing,
                        at: time,
                        expiredBefore: expired
                    )
                }
                written = now
                first = false
            } catch {
                logger.warning("recording which users have streams here failed: \(error)")
            }
            try? await Task.sleep(for: Self.interval)
        }
        _ = try? await storage.write { tx in try tx.forgetPresence(node: node) }
    }
}
