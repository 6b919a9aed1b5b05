import Foundation
import HeraldApplication
import HeraldSchema
import Logging
import Synchronization

/// Why a script job could not run or failed.
public enum ScriptError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Every engine is busy and the queue is full.
    case overloaded(queued: Int)
    /// The pool has shut down.
    case shutDown
    /// The script threw, or `$.assert` failed; `status` is the HTTP status to answer with.
    case failed(status: Int, message: String, location: ScriptLocation?)
    /// The script ran past the time limit and was stopped.
    case timedOut(limit: Duration, location: ScriptLocation?)
    /// The script's heap grew past the memory limit and was stopped.
    case memoryExceeded(limit: Int, location: ScriptLocation?)
    /// The engine did not stop at the time limit (stuck in native work); it was replaced.
    case engineStuck(limit: Duration)

    public var description: String {
        switch self {
        case .overloaded(let queued): "all script engines are busy (\(queued) requests queued); try again shortly"
        case .shutDown: "the script engines have shut down"
        case .failed(_, let message, let location): location.map { "\($0): \(message)" } ?? message
        case .timedOut(let limit, let location):
            (location.map { "\($0): " } ?? "") + "script stopped after exceeding the time limit of \(limit)"
        case .memoryExceeded(let limit, let location):
            (location.map { "\($0): " } ?? "")
                + "script stopped after its heap exceeded the memory limit of \(limit >> 20) MiB (scriptMemoryLimit)"
        case .engineStuck(let limit):
            "the script did not stop within its time limit of \(limit) and its engine was replaced"
        }
    }
}

/// Where a script error happened: type, method, file and line.
public struct ScriptLocation: Sendable, Hashable, CustomStringConvertible {
    public var typeName: String?
    public var method: String
    public var file: String
    public var line: Int?

    public var description: String {
        let owner = typeName.map { "\($0)." } ?? ""
        return "\(owner)\(method) (\(file)\(line.map { ":\($0)" } ?? ""))"
    }
}

/// A fixed set of JavaScript engines, each a context group on its own OS thread, fed from one
/// bounded queue. No script ever runs on Swift's shared executor threads.
///
/// An engine whose script was stopped (time or memory) is replaced by a new one after the job,
/// so no termination and no heap is inherited. A job still running `stuckAfter` past its time
/// limit (native work that ignores the deadline) is answered with `ScriptError.engineStuck`, and
/// a new engine thread takes the stuck one's place; the stuck thread ends when its job returns.
public final class EnginePool: Sendable {
    /// The limits every engine of the pool runs with.
    public struct Configuration: Sendable {
        /// Engine threads (default: one per core).
        public var size = ProcessInfo.processInfo.activeProcessorCount
        /// Jobs waiting beyond this are refused with `ScriptError.overloaded`.
        public var maxQueued = 1024
        /// How long one script may run before it is stopped.
        public var timeLimit: Duration = .seconds(5)
        /// The most bytes one engine's heap may hold while a script runs.
        public var memoryLimit = 512 << 20
        /// How long past its time limit a job may run before its engine counts as stuck: long
        /// enough that a loaded machine's scheduling delays never count as stuck.
        public var stuckAfter: Duration = .seconds(5)

        public init(size: Int = ProcessInfo.processInfo.activeProcessorCount) {
            self.size = size
        }
    }

    private let queue: JobQueue
    /// How many engines run scripts in parallel.
    public let size: Int

    public init(
        configuration: Configuration = Configuration(),
        makeEngine: @escaping @Sendable (Int) -> Engine = { Engine(index: $0) },
        logger: Logger = Logger(label: "herald.scripting")
    ) {
        let size = max(1, configuration.size)
        let queue = JobQueue(limit: configuration.maxQueued, threads: size)
        self.queue = queue
        self.size = size
        let start: @Sendable (Int) -> Void = { index in
            Self.startThread(
                index: index,
                queue: queue,
                configuration: configuration,
                makeEngine: makeEngine,
                logger: logger
            )
        }
        for index in 0..<size { start(index) }
        Self.startSupervisor(queue: queue, configuration: configuration, start: start, logger: logger)
        logger.info(
            "script engines started",
            metadata: [
                "engines": "\(size)", "timeLimit": "\(configuration.timeLimit)",
                "memoryLimit": "\(configuration.memoryLimit >> 20) MiB",
            ]
        )
    }

    private static func startThread(
        index: Int,
        queue: JobQueue,
        configuration: Configuration,
        makeEngine: @escaping @Sendable (Int) -> Engine,
        logger: Logger
    ) {
        let thread = Thread {
            let slot = queue.slot(index)
            func make() -> Engine {
                let engine = makeEngine(index)
                engine.setLimits(time: configuration.timeLimit, memory: configuration.memoryLimit)
                engine.logger = logger
                return engine
            }
            var engine = make()
            while let job = queue.next(slot) {
                job.run(engine)
                if queue.finished(slot) == false { break }  // replaced while stuck: end quietly
                if engine.needsReplacement {
                    logger.notice("engine \(index) replaced after a stopped script")
                    engine.close()
                    engine = make()
                }
            }
            engine.close()
            queue.threadExited(slot)
        }
        thread.name = "herald-js-\(index)"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Watches the running jobs and replaces an engine whose job overruns its time limit.
    private static func startSupervisor(
        queue: JobQueue,
        configuration: Configuration,
        start: @escaping @Sendable (Int) -> Void,
        logger: Logger
    ) {
        let limit = configuration.timeLimit + configuration.stuckAfter
        let thread = Thread {
            while let stuck = queue.abandonStuckJobs(olderThan: limit) {
                for (index, job) in stuck {
                    logger.critical(
                        "engine \(index) did not stop at its time limit; replacing it (a write transaction it holds stays open until it returns)"
                    )
                    job.abandon(.engineStuck(limit: configuration.timeLimit))
                    start(index)
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        thread.name = "herald-js-supervisor"
        thread.start()
    }

    /// Runs `body` on an engine thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable (Engine) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let answer = Answer(continuation)
            let accepted = queue.enqueue(
                Job(
                    run: { engine in answer.resume(with: Result { try body(engine) }) },
                    abandon: { error in answer.resume(with: .failure(error)) }
                )
            )
            if case .failure(let error) = accepted { answer.resume(with: .failure(error)) }
        }
    }

    /// Stops taking jobs and waits until the engines have finished what was queued.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.close { continuation.resume() }
        }
    }
}

/// A continuation resumed once, by the job or by the supervisor, whichever comes first.
final class Answer<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, any Error>?>

    init(_ continuation: CheckedContinuation<T, any Error>) {
        self.continuation = Mutex(continuation)
    }

    func resume(with result: Result<T, any Error>) {
        continuation.withLock { $0.take() }?.resume(with: result)
    }
}

/// One job: what to run on an engine, and how to answer if its engine gets stuck.
struct Job {
    var run: (Engine) -> Void
    var abandon: (ScriptError) -> Void
}

/// A bounded FIFO of jobs shared by the engine threads, and what each thread is running.
final class JobQueue: @unchecked Sendable {
    /// One engine thread's place; a stuck thread's slot is abandoned and a new one takes over.
    final class Slot {
        let index: Int
        var job: Job?
        var started = ContinuousClock.now
        var abandoned = false

        init(index: Int) { self.index = index }
    }

    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var head = 0
    private var closed = false
    private var idle = 0
    private var alive: Int
    private var slots: [Slot] = []
    private var onExit: [() -> Void] = []
    let limit: Int

    init(limit: Int, threads: Int) {
        self.limit = limit
        self.alive = threads
    }

    /// A new slot for the thread at `index`.
    func slot(_ index: Int) -> Slot {
        condition.lock()
        defer { condition.unlock() }
        let slot = Slot(index: index)
        slots.append(slot)
        return slot
    }

    func enqueue(_ job: Job) -> Result<Void, ScriptError> {
        condition.lock()
        defer { condition.unlock() }
        if closed { return .failure(.shutDown) }
        let waiting = jobs.count - head
        if waiting >= limit + idle { return .failure(.overloaded(queued: waiting)) }
        jobs.append(job)
        condition.signal()
        return .success(())
    }

    /// The next job, waiting for one; `nil` once closed and drained.
    func next(_ slot: Slot) -> Job? {
        condition.lock()
        defer { condition.unlock() }
        while head == jobs.count {
            if closed { return nil }
            idle += 1
            condition.wait()
            idle -= 1
        }
        let job = jobs[head]
        head += 1
        if head > 1024, head * 2 > jobs.count {
            jobs.removeFirst(head)
            head = 0
        }
        slot.job = job
        slot.started = .now
        return job
    }

    /// Marks the slot's job done; false when the slot was abandoned meanwhile.
    func finished(_ slot: Slot) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        slot.job = nil
        return !slot.abandoned
    }

    /// Takes the jobs running longer than `limit` off their slots; nil once the queue closed
    /// and every thread ended.
    func abandonStuckJobs(olderThan limit: Duration) -> [(Int, Job)]? {
        condition.lock()
        defer { condition.unlock() }
        if closed, alive == 0 { return nil }
        let now = ContinuousClock.now
        var stuck: [(Int, Job)] = []
        for slot in slots where !slot.abandoned {
            guard let job = slot.job, now - slot.started > limit else { continue }
            slot.abandoned = true
            slot.job = nil
            stuck.append((slot.index, job))
        }
        slots.removeAll { $0.abandoned }
        return stuck
    }

    /// Refuses new jobs; `done` runs once every engine thread has drained the queue and ended.
    func close(_ done: @escaping () -> Void) {
        condition.lock()
        closed = true
        let finished = alive == 0
        if !finished { onExit.append(done) }
        condition.broadcast()
        condition.unlock()
        if finished { done() }
    }

    /// A thread ended; an abandoned thread's place was already taken by its replacement.
    func threadExited(_ slot: Slot) {
        condition.lock()
        if !slot.abandoned { alive -= 1 }
        slots.removeAll { $0 === slot }
        let callbacks = alive == 0 ? onExit : []
        if alive == 0 { onExit = [] }
        condition.unlock()
        for callback in callbacks { callback() }
    }
}

extension EnginePool: HookThreads {
    /// Runs `body` on an engine thread, with the engine as the hook runner.
    public func withRunner<T: Sendable>(_ body: @escaping @Sendable (any LifecycleHookRunner) throws -> T)
        async throws -> T
    {
        try await run { engine in try body(engine) }
    }
}
