import Foundation
import NIOPosix
import Testing

/// Herald's listening sockets (``HTTPListener``): one per event loop on the server's port, so
/// each loop accepts the connections it serves.
@Suite struct HTTPListenerTests {
    /// This process's sockets listening on `port` (the servers run in the test process): its
    /// descriptors, not the kernel's table, which a suite opening thousands of connections
    /// changes while it is read.
    static func listeningSockets(port: Int) -> Int {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return descriptors.compactMap { Int32($0) }.filter { descriptor in
            var accepting: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0, accepting == 1
            else { return false }
            var address = sockaddr_in()
            var size = socklen_t(MemoryLayout<sockaddr_in>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &size) }
            }
            return named == 0 && address.sin_family == sa_family_t(AF_INET)
                && Int(UInt16(bigEndian: address.sin_port)) == port
        }.count
    }

    @Test func everyEventLoopListensOnThePortAndEveryConnectionIsAnswered() async throws {
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator()).count
        let listening = Self.listeningSockets(port: server.port)
        #expect(listening == loops, "\(listening) sockets listen on port \(server.port), not one per event loop")
        // The kernel spreads connections over the sockets: each of many in a row gets its answer.
        for _ in 0..<40 {
            let reader = SocketReader(
                try loopbackClient(port: server.port, request: HTTP1ConnectionTests.get("/structr/rest/Project"))
            )
            defer { reader.stop() }
            #expect(try await eventually(10) { HTTP1ConnectionTests.statuses(reader.text) == [200] })
        }
        try await server.stop()
        #expect(Self.listeningSockets(port: server.port) == 0)
    }

    @Test func aSecondHeraldOnTheSamePortStopsInsteadOfSharingIt() async throws {
        // Every socket sets SO_REUSEPORT, which would let another process of the same user join
        // the port and take part of its clients.
        let server = try await TestServer.start(try TestDirectory(files: projectSchema))
        defer { Task { try? await server.stop() } }
        let directory = try TestDirectory(files: projectSchema)
        let second = try ExecutableTests.Running(
            arguments: ["serve", "--schema", "schema", "--port", "\(server.port)", "--data", "data"],
            environment: [:],
            directory: directory.root,
            database: directory.database
        )
        #expect(try await second.exitStatus() == 1)
        #expect(second.log.lowercased().contains("address already in use"))
        #expect(
            Self.listeningSockets(port: server.port)
                == Array(MultiThreadedEventLoopGroup.singleton.makeIterator()).count
        )
    }
}
