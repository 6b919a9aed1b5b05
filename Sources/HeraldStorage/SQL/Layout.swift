import Foundation
import HeraldSchema

/// The schema of each migration generation, so a transaction decodes rows with the schema its
/// snapshot's tables were migrated to.
final class Layout: @unchecked Sendable {
    private let lock = NSLock()
    private var schemas: [Int64: Schema] = [:]

    /// How many generations stay known: transactions that began before several reloads in a
    /// row still find theirs.
    static let generationsKept = 8

    /// The schema of `generation`; an empty one before the first migration.
    ///
    /// A generation this process did not migrate (another node of a cluster did, to the schema
    /// it was started with) reads with the newest schema this process migrated to: during a
    /// rolling update the old nodes keep their schema, whose tables the additive migration kept.
    func schema(_ generation: Int64) -> Schema {
        lock.withLock { schemas[generation] ?? schemas.max { $0.key < $1.key }?.value }
            ?? Schema(types: [:], relationships: [])
    }

    /// The schema of the newest generation known.
    var newest: Schema? {
        lock.withLock { schemas.max { $0.key < $1.key }?.value }
    }

    /// Makes `schema` the one of `generation`; called inside the migration's transaction,
    /// before it commits, so no snapshot can see the generation without its schema.
    func register(_ schema: Schema, generation: Int64) {
        lock.withLock {
            schemas[generation] = schema
            for old in schemas.keys where old <= generation - Int64(Self.generationsKept) { schemas[old] = nil }
        }
    }

}
