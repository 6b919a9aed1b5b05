import Foundation
import HeraldSchema
import Logging

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

    public var description: String {
        switch self {
        case .overloaded(let queued): "all script engines are busy (\(queued) requests queued); try again shortly"
        case .shutDown: "the script engines have shut down"
        case .failed(_, let message, let location): location.map { "\($0): \(message)" } ?? message
        case .timedOut(let limit, let location):
            (location.map { "\($0): " } ?? "") + "script stopped after exceeding the time limit of \(limit)"
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
public final class EnginePool: Sendable {
    private let queue: JobQueue
    /// How many engines run scripts in parallel.
    public let size: Int

    /// - Parameters:
    ///   - size: engine threads (default: one per core).
    ///   - maxQueued: jobs waiting beyond this are refused with `ScriptError.overloaded`.
    ///   - timeLimit: how long one script may run before it is stopped.
    public init(
        size: Int = ProcessInfo.processInfo.activeProcessorCount,
        maxQueued: Int = 1024,
        timeLimit: Duration = .seconds(5),
        makeEngine: @escaping @Sendable (Int) -> Engine = { Engine(index: $0) },
        logger: Logger = Logger(label: "herald.scripting")
    ) {
        let size = max(1, size)
        let queue = JobQueue(limit: maxQueued, threads: max(1, size))
        self.queue = queue
        self.size = size
        var threads: [Thread] = []
        for index in 0..<size {
            let thread = Thread {
                let engine = makeEngine(index)
                engine.setTimeLimit(timeLimit)
                while let job = queue.next() {
                    job(engine)
                }
                engine.close()
                queue.threadExited()
            }
            thread.name = "herald-js-\(index)"
            thread.stackSize = 8 << 20
            threads.append(thread)
        }
        for thread in threads { thread.start() }
        logger.info("script engines started", metadata: ["engines": "\(size)", "timeLimit": "\(timeLimit)"])
    }

    /// Runs `body` on an engine thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable (Engine) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = queue.enqueue { engine in
                continuation.resume(with: Result { try body(engine) })
            }
            if case .failure(let error) = accepted { continuation.resume(throwing: error) }
        }
    }

    /// Stops taking jobs and waits until the engines have finished what was queued.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.close { continuation.resume() }
        }
    }
}

/// A bounded FIFO of jobs shared by the engine threads.
final class JobQueue: @unchecked Sendable {
    typealias Job = (Engine) -> Void

    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var head = 0
    private var closed = false
    private var idle = 0
    private var alive: Int
    private var onExit: [() -> Void] = []
    let limit: Int

    init(limit: Int, threads: Int) {
        self.limit = limit
        self.alive = threads
    }

    func enqueue(_ job: @escaping Job) -> Result<Void, ScriptError> {
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
    func next() -> Job? {
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
        return job
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

    func threadExited() {
        condition.lock()
        alive -= 1
        let callbacks = alive == 0 ? onExit : []
        if alive == 0 { onExit = [] }
        condition.unlock()
        for callback in callbacks { callback() }
    }
}
