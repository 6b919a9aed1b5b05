import HTTPTypes
import NIOCore
import NIOPosix
import Testing

@testable import HeraldHTTP
@testable import HeraldServer

/// Event-stream requests answered in a task on their connection's event loop.
@Suite struct LoopTaskExecutorTests {
    @Test func aTaskPreferringTheExecutorRunsOnTheLoopAcrossSuspensions() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let ranOnLoop = await Task(executorPreference: LoopTaskExecutor(eventLoop: loop)) {
            var everyStep = loop.inEventLoop
            // A suspension that resumes from another thread comes back to the loop.
            try? await Task.sleep(for: .milliseconds(10))
            everyStep = everyStep && loop.inEventLoop
            await Task.yield()
            everyStep = everyStep && loop.inEventLoop
            // A future of another loop, awaited: still back on this one.
            let other = MultiThreadedEventLoopGroup.singleton.any()
            _ = try? await other.submit { 1 }.get()
            return everyStep && loop.inEventLoop
        }.value
        #expect(ranOnLoop)
        // Without the preference, a task runs on Swift's shared executor.
        #expect(await Task { loop.inEventLoop }.value == false)
    }

    @Test func onlyStreamPathsRunOnTheLoop() {
        var configuration = HTTPTransport.Configuration()
        configuration.loopPaths = ["/structr/EventSource", "/structr/admin/events"]
        func head(_ method: HTTPRequest.Method, _ path: String) -> HTTPRequest {
            HTTPRequest(method: method, scheme: nil, authority: "x", path: path)
        }
        #expect(configuration.runsOnLoop(head(.get, "/structr/EventSource")))
        #expect(configuration.runsOnLoop(head(.get, "/structr/EventSource?channels=a&lastEventId=3")))
        #expect(configuration.runsOnLoop(head(.head, "/structr/EventSource")))
        #expect(configuration.runsOnLoop(head(.get, "/structr/admin/events")))
        // Everything else stays on Swift's executor: REST work may take a while.
        #expect(!configuration.runsOnLoop(head(.post, "/structr/EventSource")))
        #expect(!configuration.runsOnLoop(head(.get, "/structr/EventSource/x")))
        #expect(!configuration.runsOnLoop(head(.get, "/structr/rest/Project")))
        #expect(!configuration.runsOnLoop(head(.get, "/structr/admin")))
        #expect(!HTTPTransport.Configuration().runsOnLoop(head(.get, "/structr/EventSource")))
    }

    @Test func theServerRunsItsStreamEndpointsOnTheLoop() {
        // The configured EventSource path, wherever it is, and the admin console's feed.
        var configuration = HeraldConfiguration()
        #expect(configuration.transport.loopPaths == ["/structr/EventSource", "/structr/admin/events"])
        configuration.eventSourcePath = "/events"
        #expect(configuration.transport.loopPaths == ["/events", "/structr/admin/events"])
    }
}
