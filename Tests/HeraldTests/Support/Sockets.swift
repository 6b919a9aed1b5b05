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
