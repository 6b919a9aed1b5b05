import Logging
import NIOCore
import PostgresNIO

extension PostgreSQLStorage: SharedStorageBackend {
    /// LISTENs on a connection of its own: PostgreSQL sends the notices a commit queued (its
    /// events' with their append, ``PostgreSQLConnection/appendStatement(_:)``, the others with
    /// ``PostgreSQLConnection/commit()``) when it commits. Notifications sent while this
    /// connection was down are lost, so every (re)connection starts with
    /// ``CommitNotice/reconnected``: catch up from the log, forget what caches hold. The events
    /// notices of this process's own commits are skipped (``RecentAppends``).
    public func followCommits(_ notice: @escaping @Sendable (CommitNotice) async -> Void) async throws {
        let connection = try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.next(),
            configuration: try location.connectionConfiguration(),
            id: 0,
            logger: logger
        )
        // Closed before it goes, however the listening ends (postgres-nio requires it).
        do {
            try await connection.listen(on: PostgreSQLConnection.noticeChannel) { notifications in
                // Listening now: whatever committed before is in the database.
                recentAppends.removeAll()
                await notice(.reconnected)
                for try await notification in notifications {
                    guard let parsed = PostgreSQLConnection.notice(notification.payload) else { continue }
                    // This process's own commit: its thread delivers the events.
                    if case .events(let id) = parsed, recentAppends.take(id) { continue }
                    await notice(parsed)
                }
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }
}
