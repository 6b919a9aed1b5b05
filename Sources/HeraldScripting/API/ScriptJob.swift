import CJavaScriptCore
import HeraldApplication
import HeraldSchema
import HeraldStorage

/// What the scripts of one unit of work share on an engine: the work itself, `$.this`,
/// `$.arguments`, `$.request`, the hook input and the `$.store` of the transaction.
final class ScriptJob {
    let work: UnitOfWork
    var this: EntityReference?
    var arguments: JSONValue = .null
    var request: [String: String] = [:]
    /// `$.modifications` and `$.data` of the hook running now.
    var input = HookInput()
    var store: [String: JSValueRef] = [:]
    /// The Swift error behind the JavaScript exception being thrown, so it surfaces unchanged.
    var hostError: (any Error)?

    init(work: UnitOfWork) {
        self.work = work
    }

    var tx: any StorageTransaction { work.tx }
    var model: DataModel { work.model }
    var scope: AccessScope { get throws { try work.scope } }

    func releaseStore(_ engine: Engine) {
        for value in store.values { JSValueUnprotect(engine.context, value) }
        store = [:]
    }
}

extension Engine {
    /// Runs `body` with a job for `work`: the running one if it belongs to `work`, else a new
    /// one whose `$.store` ends with it.
    func withJob<T>(for work: UnitOfWork, _ body: (ScriptJob) throws -> T) rethrows -> T {
        if let job, job.work === work { return try body(job) }
        let job = ScriptJob(work: work)
        let previous = self.job
        self.job = job
        defer {
            self.job = previous
            job.releaseStore(self)
        }
        return try body(job)
    }
}

extension Engine: LifecycleHookRunner {
    /// Runs a lifecycle hook with `$.this` and its input inside `work`.
    public func run(_ hook: MethodDefinition, this: EntityReference?, input: HookInput, in work: UnitOfWork) throws {
        try withJob(for: work) { job in
            let saved = job.input
            job.input = input
            defer { job.input = saved }
            _ = try invoke(hook, job: job, this: this, result: false)
        }
    }
}
