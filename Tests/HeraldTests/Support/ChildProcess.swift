import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with `posix_spawn`, for the tests that run real programs (the
/// `herald` binary, Chromium, Python clients, the load generator).
///
/// Foundation's `Process.run()` crashed the test process now and then on this platform (a read
/// past the end of a directory entry while it lists open descriptors; swift-corelibs-foundation
/// #5472). Here the child closes every descriptor above stderr (`closefrom`), so it inherits none
/// of the test process's sockets, whatever their close-on-exec flag; its stdin is /dev/null and
/// its stdout and stderr go to one pipe the parent reads, or to /dev/null.
final class ChildProcess: @unchecked Sendable {
    let processIdentifier: pid_t
    private let lock = NSLock()
    private var status: Int32?
    private var outputData = Data()
    private var outputEnded = false
    private let outputDone = DispatchSemaphore(value: 0)

    /// Starts `executable` with `arguments`; `environment` replaces the test process's when
    /// given; `directory` is its working folder. With `captureOutput`, stdout and stderr are
    /// collected (``output``) and `onOutput` sees each piece as it arrives.
    init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        directory: String? = nil,
        captureOutput: Bool = true,
        onOutput: (@Sendable (Data) -> Void)? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var pipe: [Int32] = [-1, -1]
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if captureOutput {
            // Close-on-exec matters little: every child here closes what it inherits.
            guard Glibc.pipe(&pipe) == 0 else { throw TestFailure("pipe failed: \(errno)") }
            for end in pipe { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            posix_spawn_file_actions_adddup2(&actions, pipe[1], 1)
            posix_spawn_file_actions_adddup2(&actions, pipe[1], 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        if let directory { _ = Self.addChdir(&actions, directory) }
        guard Self.addCloseFrom(&actions, 3) == 0 else { throw TestFailure("posix_spawn cannot close descriptors") }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let variables = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let envp = variables.map { strdup($0) } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        if captureOutput { close(pipe[1]) }
        guard result == 0 else {
            if captureOutput { close(pipe[0]) }
            throw TestFailure("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        processIdentifier = pid
        if captureOutput {
            let readEnd = pipe[0]
            Thread.detachNewThread { [self] in
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = read(readEnd, &buffer, buffer.count)
                    if count < 0, errno == EINTR { continue }
                    guard count > 0 else { break }
                    let piece = Data(buffer[0..<count])
                    lock.withLock { outputData.append(piece) }
                    onOutput?(piece)
                }
                close(readEnd)
                lock.withLock { outputEnded = true }
                outputDone.signal()
            }
        } else {
            outputEnded = true
            outputDone.signal()
        }
    }

    /// What the child wrote to stdout and stderr so far.
    var output: Data { lock.withLock { outputData } }

    /// Whether the child has not exited yet (reaping it when it has).
    var isRunning: Bool { reap(blocking: false) == nil }

    /// The exit status, or the signal that ended the child, as Foundation's `Process` reports it.
    var terminationStatus: Int32 { reap(blocking: true) ?? -1 }

    /// Blocks until the child exits and its output is read to the end; returns its status.
    @discardableResult
    func waitUntilExit() -> Int32 {
        let status = terminationStatus
        outputDone.wait()
        outputDone.signal()
        return status
    }

    func terminate() { kill(processIdentifier, SIGTERM) }

    /// SIGTERM, then reaped on a thread of its own so no zombie is left.
    func stop() {
        terminate()
        Thread.detachNewThread { self.waitUntilExit() }
    }
    func interrupt() { kill(processIdentifier, SIGINT) }
    func kill9() { kill(processIdentifier, SIGKILL) }

    private func reap(blocking: Bool) -> Int32? {
        lock.lock()
        if let status {
            lock.unlock()
            return status
        }
        lock.unlock()
        var raw: Int32 = 0
        var result: pid_t
        repeat {
            result = waitpid(processIdentifier, &raw, blocking ? 0 : WNOHANG)
        } while result < 0 && errno == EINTR
        if blocking, result != processIdentifier {
            // Another caller reaped it: its status is on the way.
            while true {
                if let status = lock.withLock({ status }) { return status }
                usleep(1000)
            }
        }
        return lock.withLock {
            if let status { return status }
            guard result == processIdentifier else { return nil }
            // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out: the macros are not imported.
            let signal = raw & 0x7f
            let decoded = signal == 0 ? (raw >> 8) & 0xff : signal
            status = decoded
            return decoded
        }
    }

    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias Chdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>)
        -> Int32

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), looked up at run time.
    private static func addCloseFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) -> Int32 {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        else { return -1 }
        return unsafeBitCast(symbol, to: CloseFrom.self)(&actions, lowest)
    }

    /// glibc's `posix_spawn_file_actions_addchdir_np` (2.29 and later).
    private static func addChdir(_ actions: inout posix_spawn_file_actions_t, _ directory: String) -> Int32 {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        else { return -1 }
        return directory.withCString { unsafeBitCast(symbol, to: Chdir.self)(&actions, $0) }
    }
}
