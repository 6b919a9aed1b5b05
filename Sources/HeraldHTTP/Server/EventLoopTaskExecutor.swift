import NIOCore

/// Runs a connection's tasks on the event loop that owns its channel.
///
/// A request's async path (reading the head and body, routing, middleware, writing the answer)
/// then stays on one thread instead of hopping between the loop and Swift's shared executor for
/// every read and write. Work that blocks or takes long never runs here: storage runs on its own
/// threads, scripts on engine threads, bcrypt on NIO's thread pool.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
