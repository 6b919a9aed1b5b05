/// An object as the transaction that wrote it left it: read from the write's own answer, and
/// known once that transaction has committed.
///
/// PostgreSQL sends a write without waiting for its answer, which arrives by the commit's, so
/// the state after the commit costs no statement of its own (an `after…` hook starts from it).
public final class WrittenEntity: Sendable {
    private let read: @Sendable () -> StoredEntity?

    package init(_ read: @escaping @Sendable () -> StoredEntity?) {
        self.read = read
    }

    /// The object as written; nil if the write did not succeed (or the object was deleted).
    public var value: StoredEntity? { read() }
}
