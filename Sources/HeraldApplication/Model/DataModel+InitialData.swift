import HeraldSchema
import HeraldStorage

extension DataModel {
    /// The metadata key recording that the initial data was loaded.
    static let initialDataKey = "initialDataLoaded"

    /// Loads `schema.initialData` once, into an empty database: `{"Type": [{...}, ...]}`.
    /// Objects may give their own `id`; relationships may point at any object in the file.
    /// Returns how many objects were created (0 when skipped).
    public func loadInitialData(in tx: any StorageTransaction) throws -> Int {
        guard let data = schema.initialData?.objectValue else { return 0 }
        guard try tx.metadata(Self.initialDataKey) == nil, try tx.isEmpty() else { return 0 }
        var created: [(String, String, JSONObject)] = []
        for (typeName, list) in data {
            let type = try type(typeName)
            guard let objects = list.arrayValue else {
                throw DataError.invalidInput("initial-data.json: \(typeName) must be a list of objects")
            }
            for object in objects {
                guard var input = object.objectValue else {
                    throw DataError.invalidInput("initial-data.json: \(typeName) must be a list of objects")
                }
                // Properties first; relationships once every object exists.
                var links = JSONObject()
                for name in type.relationships.keys {
                    if let value = input.removeValue(forKey: name) { links[name] = value }
                }
                let entity = try create(typeName, input, owner: nil, allowID: true, in: tx)
                if !links.isEmpty { created.append((typeName, entity.id, links)) }
            }
        }
        for (typeName, id, links) in created {
            try update(typeName, id: id, links, in: tx)
        }
        try tx.setMetadata(Self.initialDataKey, now().iso8601)
        return data.values.reduce(0) { $0 + ($1.arrayValue?.count ?? 0) }
    }
}
