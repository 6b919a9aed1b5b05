extension Schema {
    /// A JSON listing of types, their properties, relationships and methods, global methods, declared
    /// events and channel rules.
    public var listing: JSONValue {
        var types: [JSONValue] = []
        for type in self.types.values {
            var properties: [JSONValue] = []
            for property in type.properties.values {
                var p: JSONObject = ["name": .string(property.name), "type": .string(property.type.name)]
                if case .enumeration(let values) = property.type { p["values"] = .array(values.map(JSONValue.string)) }
                if property.required { p["required"] = true }
                if property.unique { p["unique"] = true }
                if property.indexed { p["indexed"] = true }
                if let d = property.defaultValue { p["default"] = d }
                if property.writeOnly { p["writeOnly"] = true }
                properties.append(.object(p))
            }
            let relationships: [JSONValue] = type.relationships.values.map { end in
                [
                    "name": .string(end.name),
                    "to": .array(end.otherTypes.map(JSONValue.string)),
                    "cardinality": .string(end.cardinality.rawValue),
                    "direction": .string(end.direction == .outgoing ? "outgoing" : "incoming"),
                ]
            }
            var t: JSONObject = [
                "name": .string(type.name),
                "builtIn": .bool(type.isBuiltIn),
                "properties": .array(properties),
                "relationships": .array(relationships),
                "methods": .array(type.methods.map(\.listing)),
            ]
            if let file = type.file { t["file"] = .string(file) }
            types.append(.object(t))
        }
        let declared: [JSONValue] = events.values.map { event in
            [
                "name": .string(event.name), "description": event.description.map(JSONValue.string) ?? .null,
                "schema": event.schema.source,
            ]
        }
        let rules: [JSONValue] = channels.all.map { rule in
            ["pattern": .string(rule.pattern), "subscribe": .string(rule.subscribe.name)]
        }
        return [
            "types": .array(types), "globalMethods": .array(globalMethods.map(\.listing)), "events": .array(declared),
            "channels": .array(rules),
        ]
    }
}

extension MethodDefinition {
    var listing: JSONValue {
        var m: JSONObject = [
            "name": .string(name),
            "file": .string(path),
            "language": .string(isStructrScript ? "StructrScript" : "JavaScript"),
        ]
        if let event = lifecycleEvent { m["lifecycle"] = .string(event.rawValue) }
        return .object(m)
    }
}
