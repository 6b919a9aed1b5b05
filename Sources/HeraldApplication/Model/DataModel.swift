import HeraldSchema
import HeraldStorage

/// Schema-aware operations over any storage backend: validated creates, updates and deletes,
/// relationship writes and the REST rendering of objects. Every operation runs inside a
/// transaction the caller opened, so a refusal anywhere rolls back everything.
public struct DataModel: Sendable {
    public let schema: Schema
    public let hasher: any PasswordHasher
    /// The current time; replaceable for tests.
    public var now: @Sendable () -> Timestamp

    public init(schema: Schema, hasher: any PasswordHasher) {
        self.schema = schema
        self.hasher = hasher
        self.now = { Timestamp.now }
    }

    public func type(_ name: String) throws(DataError) -> TypeDefinition {
        guard let type = schema.types[name] else { throw .unknownType(name) }
        return type
    }

    /// The object, or `DataError.notFound`.
    public func get(_ typeName: String, id: String, in tx: any StorageTransaction) throws -> StoredEntity {
        _ = try type(typeName)
        guard EntityID.isValid(id), let entity = try tx.fetch(type: typeName, id: id) else {
            throw DataError.notFound(type: typeName, id: id)
        }
        return entity
    }
}
