import Foundation
import Logging

/// The connection limit in force: the configured one, kept below the open-file limit so the
/// server always has descriptors for its database, schema reload and logs.
enum ConnectionLimit {
    /// Descriptors kept for everything but connections: 1,024, or a quarter under a low limit.
    static func reserve(files: Int) -> Int { min(1024, files / 4) }

    static func effective(configured: Int, logger: Logger) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return configured }
        // Take what the hard limit allows.
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let files = Int(clamping: limit.rlim_cur)
        let allowed = max(16, files - reserve(files: files))
        if configured > allowed {
            logger.warning(
                "maxConnections lowered to stay below the open-file limit",
                metadata: ["configured": "\(configured)", "openFiles": "\(files)", "maxConnections": "\(allowed)"]
            )
            return allowed
        }
        return configured
    }
}
