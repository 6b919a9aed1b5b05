import Foundation
import Logging

/// Ends the process if a graceful shutdown, started by SIGTERM or SIGINT, takes too long.
final class ShutdownDeadline {
    private let sources: [any DispatchSourceSignal]

    init(after limit: Duration, logger: Logger) {
        let queue = DispatchQueue(label: "herald.shutdown-deadline")
        let seconds = Double(limit.components.seconds)
        sources = [SIGTERM, SIGINT].map { signalNumber in
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler {
                queue.asyncAfter(deadline: .now() + seconds) {
                    logger.critical("graceful shutdown took longer than \(Int(seconds)) s (shutdownTimeout); exiting")
                    fflush(nil)
                    _exit(1)
                }
            }
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
