import HeraldApplication
import HeraldEvents
import HeraldSchema
import HeraldStorage

/// The admin console's script runner: a snippet of JavaScript run as a chosen caller in one unit
/// of work, rolled back unless asked to commit, with what it returned, logged and raised.
public struct ScriptConsole: Sendable {
    let methods: MethodRunner

    public init(methods: MethodRunner) {
        self.methods = methods
    }

    /// What one run did.
    public struct Run: Sendable {
        /// What the snippet returned, entities in their REST form (null on failure).
        public var result: JSONValue = .null
        /// Its `$.log` lines and those of the hooks it triggered, in order.
        public var log: [String] = []
        /// The events it raised (audience after group expansion); ids only when committed.
        public var events: [EventHub.Entry] = []
        public var committed = false
        /// What it appended to the event log: its events, with ids once committed.
        var appended: [EventLog.Appended] = []
        /// Why it failed (a script error, a refused write): nothing of it stands.
        public var failure: (any Error)?
    }

    /// Thrown inside the transaction to roll it back once the run is recorded.
    struct RollBack: Error {
        var run: Run
    }

    /// Runs `source` as `caller`; with `commit`, its writes and events stand (and its
    /// `after…` hooks run), otherwise the transaction is rolled back.
    public func run(_ source: String, as caller: Caller, commit: Bool) async throws -> Run {
        let method = MethodDefinition(name: "console", typeName: nil, path: "console/snippet.js", source: source)
        let workRunner = methods.workRunner
        return try await methods.pool.run { engine in
            engine.transcript = []
            defer { engine.transcript = nil }
            var run = Run()
            do {
                run = try workRunner.perform(caller, hooks: engine) { work in
                    var run = Run()
                    do {
                        run.result = try engine.withJob(for: work) { job in
                            try engine.runMethod(method, id: nil, arguments: .object([:]), request: [:], job: job)
                        }
                        if !work.validationErrors.isEmpty { throw DataError.validation(work.validationErrors) }
                    } catch {
                        run.failure = error
                    }
                    // A run that stands shows its events with the ids the log gives them at
                    // the commit.
                    if commit, run.failure == nil { try work.flushEvents() }
                    run.events = work.raisedEvents
                    run.appended = work.appended
                    guard commit, run.failure == nil else { throw RollBack(run: run) }
                    run.committed = true
                    return run
                }
            } catch let rollBack as RollBack {
                // Rolled back: the log never kept these events' ids (`committed` says so).
                run = rollBack.run
            } catch {
                // Failed at commit (a unique property, say): nothing stands.
                run.failure = error
                run.events = []
            }
            if run.committed { run.events = UnitOfWork.forStreams(run.appended) }
            // `after…` hooks of a committed run log too.
            run.log = engine.transcript ?? []
            return run
        }
    }
}
