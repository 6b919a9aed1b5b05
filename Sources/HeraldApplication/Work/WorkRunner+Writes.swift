import HeraldSchema
import HeraldStorage

extension WorkRunner {
    /// Creates objects in one unit of work, running their hooks; returns their ids.
    public func create(_ typeName: String, _ inputs: [JSONObject], caller: Caller) async throws -> [String] {
        let hooks = try model.type(typeName).hasHooks(for: .onCreate)
        return try await write(caller, hooks: hooks) { work in
            try inputs.map { try work.create(typeName, $0).id }
        }
    }

    /// Updates one object, running its `onSave` hooks; returns its REST form.
    public func update(_ typeName: String, id: String, _ input: JSONObject, caller: Caller) async throws -> JSONValue {
        let hooks = try model.type(typeName).hasHooks(for: .onSave)
        return try await write(caller, hooks: hooks) { work in
            try work.update(EntityReference(type: typeName, id: id), input)
            return try work.model.render(
                try work.model.get(typeName, id: id, in: work.tx),
                as: try work.scope,
                in: work.tx
            )
        }
    }

    /// Deletes one object, running its `onDelete` and `afterDelete` hooks.
    public func delete(_ typeName: String, id: String, caller: Caller) async throws {
        let hooks = try model.type(typeName).hasHooks(for: .onDelete)
        try await write(caller, hooks: hooks) { work in
            try work.delete(EntityReference(type: typeName, id: id))
        }
    }
}
