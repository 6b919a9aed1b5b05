import NIOCore

/// Runs a task's jobs on an event loop: a request whose work is a few checks and then the loop's
/// own (opening an event stream, whose sink lives on its connection's loop) runs there without
/// a hop to Swift's shared executor and back for every step.
///
/// Only for such requests: anything that waits blocks every connection on the loop. What blocks
/// in Herald already runs elsewhere (bcrypt on NIO's thread pool, storage on its own queues,
/// scripts on engine threads).
final class LoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
