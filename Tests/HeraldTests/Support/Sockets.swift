import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A socket connected to the server on loopback `port` that has sent `request`; with
/// `receiveBuffer`, its kernel receive buffer is that small.
func loopbackClient(port: Int, request: String, receiveBuffer: Int32? = nil) throws -> Int32 {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    if var size = receiveBuffer {
        setsockopt(socket, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else {
        close(socket)
        throw TestFailure("connect to port \(port) failed")
    }
    _ = request.withCString { send(socket, $0, strlen($0), 0) }
    return socket
}

/// Reads `socket` on a thread of its own until the server closes it or `seconds` pass, then
/// closes it: what arrived and whether the server closed the connection.
func readUntilClosed(_ socket: Int32, seconds: Double) async -> (text: String, closedByServer: Bool) {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let deadline = Date().addingTimeInterval(seconds)
            var received = [UInt8]()
            var closed = false
            var buffer = [UInt8](repeating: 0, count: 65536)
            while Date() < deadline {
                let count = recv(socket, &buffer, buffer.count, 0)
                if count == 0 {
                    closed = true
                    break
                }
                if count > 0 { received += buffer[0..<count] }
            }
            close(socket)
            continuation.resume(returning: (String(decoding: received, as: UTF8.self), closed))
        }
    }
}

/// Reads a socket on a thread of its own until the server closes it or ``stop()`` is called,
/// so a test can wait for what it expects instead of for a fixed time.
final class SocketReader: @unchecked Sendable {
    private let lock = NSLock()
    private var received: [UInt8] = []
    private var closedByServer = false
    private var stopping = false

    init(_ socket: Int32) {
        Thread.detachNewThread { [self] in
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var buffer = [UInt8](repeating: 0, count: 65536)
            while !lock.withLock({ stopping }) {
                let count = recv(socket, &buffer, buffer.count, 0)
                if count == 0 {
                    lock.withLock { closedByServer = true }
                    break
                }
                if count > 0 { lock.withLock { received += buffer[0..<count] } }
            }
            close(socket)
        }
    }

    /// What arrived so far.
    var text: String { lock.withLock { String(decoding: received, as: UTF8.self) } }
    /// Whether the server closed the connection.
    var closed: Bool { lock.withLock { closedByServer } }

    /// Stops reading and closes the socket.
    func stop() { lock.withLock { stopping = true } }
}

/// Runs blocking work (a `poll`, a child's exit) on a thread of its own. Swift's shared pool
/// has one thread per core, two here: a test that blocks one of them stalls every in-process
/// server and client of the tests running beside it.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// The TCP option `option` of the server's end of `socket`, a connection this process made to
/// a server running in this process: the socket here whose peer is `socket`'s local address.
/// Nil while the server has not accepted it.
func serverSideTCPOption(of socket: Int32, _ option: Int32) throws -> Int32? {
    func address(_ call: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> sockaddr_in? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call($0, &length) }
        }
        guard result == 0, length == MemoryLayout<sockaddr_in>.size, address.sin_family == sa_family_t(AF_INET)
        else { return nil }
        return address
    }
    guard let local = address({ getsockname(socket, $0, $1) }) else { throw TestFailure("not an IPv4 socket") }
    for name in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
        guard let fd = Int32(name), fd != socket, let peer = address({ getpeername(fd, $0, $1) }),
            peer.sin_port == local.sin_port, peer.sin_addr.s_addr == local.sin_addr.s_addr
        else { continue }
        var value: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), option, &value, &size) == 0 else {
            throw TestFailure("getsockopt failed on the server's socket")
        }
        return value
    }
    return nil
}
