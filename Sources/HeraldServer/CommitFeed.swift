import HeraldApplication
import HeraldEvents
import HeraldHTTP
import HeraldStorage
import Logging
import ServiceLifecycle

/// On a database several nodes share: what the other nodes commit reaches this one at once.
/// Their events go out to this node's streams in id order, read from the log; the caches of
/// grants, group members and sessions forget what changed; a logout closes the session's
/// streams here too. After every reconnection the node catches up from the log and forgets
/// everything cached, so a lost notification costs a read, never an event.
struct CommitFeed: Service {
    let storage: any SharedStorageBackend
    let workRunner: WorkRunner
    let sessions: Sessions
    let logger: Logger

    func run() async throws {
        let (workRunner, sessions) = (self.workRunner, self.sessions)
        await cancelWhenGracefulShutdown {
            var pause = Duration.milliseconds(100)
            while !Task.isCancelled {
                let started = ContinuousClock.now
                do {
                    try await storage.followCommits { notice in
                        switch notice {
                        case .reconnected:
                            workRunner.committedElsewhere(nil)
                            await workRunner.delivery.catchUp(through: nil)
                        case .events(let id): await workRunner.delivery.catchUp(through: id)
                        case .changed(let types): workRunner.committedElsewhere(types.isEmpty ? nil : types)
                        case .sessionEnded(let key): sessions.ended(key: key)
                        }
                    }
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("the commit feed lost its connection to the database; reconnecting: \(error)")
                }
                if ContinuousClock.now - started > .seconds(10) { pause = .milliseconds(100) }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(5))
            }
        }
    }
}

/// Writes which users have streams on this node, for `$.sendEvent` on the others (see
/// ``Presence``); on shutdown, takes them back.
struct PresenceService: Service {
    let presence: Presence

    func run() async throws {
        await cancelWhenGracefulShutdown { await presence.run() }
    }
}
