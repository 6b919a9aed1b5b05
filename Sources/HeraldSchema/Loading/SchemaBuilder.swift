/// Builds a validated `Schema` from parsed type files, built-in types and script files.
struct SchemaBuilder {
    private var types: OrderedDictionary<String, TypeDefinition> = [:]
    private var relationships: [Relationship] = []
    private var globalMethods: [MethodDefinition] = []
    /// Where each name on each type came from, to report clashes with both places.
    private var origins: [String: [String: String]] = [:]
    private var pendingRelationships: [(file: String, field: String, relationship: Relationship)] = []
    /// Views are checked once every relationship end is known.
    private var pendingViews: [(type: String, file: String, name: String, entries: [String])] = []

    init() {
        for name in BuiltInType.all {
            var type = TypeDefinition(name: name, isBuiltIn: true)
            for property in Schema.builtInProperties[name] ?? [] {
                type.properties[property.name] = property
                origins[name, default: [:]][property.name] = "built-in \(name).\(property.name)"
            }
            types[name] = type
        }
        for relationship in Schema.builtInRelationships {
            pendingRelationships.append(("built-in", relationship.key, relationship))
        }
    }

    mutating func addTypes(_ documents: [(name: String, file: String, json: JSONObject)]) throws(SchemaError) {
        // Declare every type first so relationships may point anywhere.
        for document in documents where types[document.name] == nil {
            types[document.name] = TypeDefinition(name: document.name)
        }
        for document in documents {
            try addType(document.name, file: document.file, json: document.json)
        }
    }

    private mutating func addType(_ name: String, file: String, json: JSONObject) throws(SchemaError) {
        for key in json.keys where !["$schema", "description", "properties", "relationships", "views"].contains(key) {
            throw SchemaError(
                file: file,
                field: key,
                "unknown key; a type file has \"properties\", \"relationships\" and \"views\""
            )
        }
        types[name]!.file = file
        if let properties = json["properties"] {
            guard case .object(let object) = properties else {
                throw SchemaError(file: file, field: "properties", "must be an object")
            }
            for (propertyName, spec) in object {
                let field = "properties.\(propertyName)"
                try claim(propertyName, on: name, file: file, field: field)
                let property = try Self.parseProperty(propertyName, spec, file: file, field: field)
                types[name]!.properties[propertyName] = property
            }
        }
        if let relationships = json["relationships"] {
            guard case .object(let object) = relationships else {
                throw SchemaError(file: file, field: "relationships", "must be an object")
            }
            for (relationshipName, spec) in object {
                let field = "relationships.\(relationshipName)"
                try claim(relationshipName, on: name, file: file, field: field)
                let relationship = try parseRelationship(relationshipName, of: name, spec, file: file, field: field)
                pendingRelationships.append((file, field, relationship))
            }
        }
        if let views = json["views"] {
            guard case .object(let object) = views else {
                throw SchemaError(file: file, field: "views", "must be an object of view names to lists of properties")
            }
            for (viewName, spec) in object {
                let field = "views.\(viewName)"
                if TypeDefinition.builtInViews.contains(viewName) {
                    throw SchemaError(file: file, field: field, "'\(viewName)' is a built-in view and shows everything")
                }
                // A view's name shares /<Type>/<id>/<name> with relationships and methods.
                try claim(viewName, on: name, file: file, field: field)
                guard case .array(let items) = spec, !items.isEmpty else {
                    throw SchemaError(file: file, field: field, "must be a non-empty list of property names")
                }
                var entries: [String] = []
                for item in items {
                    guard case .string(let entry) = item else {
                        throw SchemaError(file: file, field: field, "must list property names as strings")
                    }
                    entries.append(entry)
                }
                pendingViews.append((name, file, viewName, entries))
            }
        }
    }

    /// Records that `name` exists on `type`, refusing a second use.
    private mutating func claim(_ name: String, on type: String, file: String, field: String) throws(SchemaError) {
        guard Naming.isPropertyName(name) else {
            throw SchemaError(
                file: file,
                field: field,
                "'\(name)' is not a valid name (lowerCamelCase letters and digits)"
            )
        }
        if SystemProperty.names.contains(name) {
            throw SchemaError(file: file, field: field, "'\(name)' clashes with the system property of every object")
        }
        if let previous = origins[type]?[name] {
            throw SchemaError(file: file, field: field, "'\(name)' on \(type) clashes with \(previous)")
        }
        origins[type, default: [:]][name] = "\(file) \(field)"
    }

    static func parseProperty(_ name: String, _ spec: JSONValue, file: String, field: String) throws(SchemaError)
        -> PropertyDefinition
    {
        func fail(_ key: String?, _ message: String) -> SchemaError {
            SchemaError(file: file, field: key.map { "\(field).\($0)" } ?? field, message)
        }
        let object: JSONObject
        switch spec {
        case .string(let typeName): object = ["type": .string(typeName)]
        case .object(let o): object = o
        default: throw fail(nil, "a property is a type name or an object with \"type\"")
        }
        for key in object.keys
        where !["type", "required", "unique", "indexed", "default", "values", "description"].contains(key) {
            throw fail(key, "unknown modifier; use type, required, unique, indexed, default or values")
        }
        guard case .string(let typeName)? = object["type"] else {
            throw fail("type", "missing or not a string; one of \(PropertyType.fileTypeNames.joined(separator: ", "))")
        }
        let type: PropertyType
        switch typeName {
        case "string": type = .string
        case "integer": type = .integer
        case "number": type = .number
        case "boolean": type = .boolean
        case "date": type = .date
        case "json": type = .json
        case "enum":
            guard case .array(let raw)? = object["values"], !raw.isEmpty else {
                throw fail("values", "an enum needs a non-empty array of strings")
            }
            var values: [String] = []
            for value in raw {
                guard case .string(let s) = value, !s.isEmpty else {
                    throw fail("values", "enum values are non-empty strings")
                }
                guard !values.contains(s) else { throw fail("values", "'\(s)' is listed twice") }
                values.append(s)
            }
            type = .enumeration(values)
        default:
            throw fail(
                "type",
                "unknown property type '\(typeName)'; one of \(PropertyType.fileTypeNames.joined(separator: ", "))"
            )
        }
        if object["values"] != nil, case .enumeration = type {
        } else if object["values"] != nil {
            throw fail("values", "only enum properties have values")
        }
        func flag(_ key: String) throws(SchemaError) -> Bool {
            switch object[key] {
            case nil: return false
            case .bool(let b)?: return b
            default: throw fail(key, "must be true or false")
            }
        }
        var property = PropertyDefinition(
            name: name,
            type: type,
            required: try flag("required"),
            unique: try flag("unique"),
            indexed: try flag("indexed")
        )
        if let defaultValue = object["default"], !defaultValue.isNull {
            do {
                property.defaultValue = try property.coerce(defaultValue)
            } catch {
                throw fail("default", "does not fit the property type: \(error.detail)")
            }
        }
        return property
    }

    private func parseRelationship(
        _ name: String,
        of type: String,
        _ spec: JSONValue,
        file: String,
        field: String
    ) throws(SchemaError) -> Relationship {
        func fail(_ key: String?, _ message: String) -> SchemaError {
            SchemaError(file: file, field: key.map { "\(field).\($0)" } ?? field, message)
        }
        guard case .object(let object) = spec else {
            throw fail(nil, "a relationship is an object with \"to\" and \"cardinality\"")
        }
        for key in object.keys
        where !["to", "cardinality", "inverse", "inverseCardinality", "targetLinkRight", "description"].contains(key) {
            throw fail(key, "unknown key; use to, cardinality, inverse, inverseCardinality or targetLinkRight")
        }
        guard case .string(let target)? = object["to"] else { throw fail("to", "missing; name the target type") }
        guard types[target] != nil else {
            throw fail("to", "relationship to the missing type '\(target)'")
        }
        func cardinality(_ key: String) throws(SchemaError) -> Cardinality {
            switch object[key] {
            case nil: return .many
            case .string(let s)?:
                guard let c = Cardinality(rawValue: s) else { throw fail(key, "must be \"one\" or \"many\"") }
                return c
            default: throw fail(key, "must be \"one\" or \"many\"")
            }
        }
        var inverse: String?
        switch object["inverse"] {
        case nil: break
        case .string(let s)?: inverse = s
        default: throw fail("inverse", "must be a property name")
        }
        if object["inverseCardinality"] != nil, inverse == nil {
            throw fail("inverseCardinality", "only a relationship with an inverse has an inverse cardinality")
        }
        var targetLinkRight = LinkRight.write
        switch object["targetLinkRight"] {
        case nil: break
        case .string(let s)?:
            guard let right = LinkRight(rawValue: s) else {
                throw fail("targetLinkRight", "must be \"read\" or \"write\"")
            }
            targetLinkRight = right
        default: throw fail("targetLinkRight", "must be \"read\" or \"write\"")
        }
        return Relationship(
            sourceType: type,
            name: name,
            targetTypes: [target],
            cardinality: try cardinality("cardinality"),
            inverseName: inverse,
            inverseCardinality: try cardinality("inverseCardinality"),
            targetLinkRight: targetLinkRight
        )
    }

    mutating func addMethods(_ methods: [MethodDefinition], folder: String) throws(SchemaError) {
        if folder == SchemaLoader.globalFolder {
            globalMethods.append(contentsOf: methods)
            return
        }
        guard types[folder] != nil else {
            throw SchemaError(file: folder, "a script folder is named after a type, but there is no type '\(folder)'")
        }
        for method in methods {
            if let clash = origins[folder]?[method.name] {
                throw SchemaError(file: method.path, "method '\(method.name)' clashes with \(clash)")
            }
        }
        types[folder]!.methods.append(contentsOf: methods)
    }

    mutating func build(initialData: JSONValue?) throws(SchemaError) -> Schema {
        for pending in pendingRelationships {
            let relationship = pending.relationship
            types[relationship.sourceType]!.relationships[relationship.name] = RelationshipEnd(
                name: relationship.name,
                relationship: relationship,
                direction: .outgoing
            )
            if let inverse = relationship.inverseName {
                for target in relationship.targetTypes {
                    try claim(inverse, on: target, file: pending.file, field: "\(pending.field).inverse")
                    types[target]!.relationships[inverse] = RelationshipEnd(
                        name: inverse,
                        relationship: relationship,
                        direction: .incoming
                    )
                }
            }
            relationships.append(relationship)
        }
        for type in types.values {
            for method in type.methods {
                if let clash = origins[type.name]?[method.name] {
                    throw SchemaError(file: method.path, "method '\(method.name)' clashes with \(clash)")
                }
            }
        }
        for view in pendingViews {
            let type = types[view.type]!
            for entry in view.entries
            where type.properties[entry] == nil && type.relationships[entry] == nil
                && !SystemProperty.names.contains(entry)
            {
                throw SchemaError(
                    file: view.file,
                    field: "views.\(view.name)",
                    "'\(entry)' is not a property or relationship of \(view.type)"
                )
            }
            types[view.type]!.views[view.name] = view.entries
        }
        if let initialData, initialData.objectValue == nil {
            throw SchemaError(file: SchemaLoader.initialDataFile, "must be an object of type names to lists of objects")
        }
        return Schema(
            types: types,
            relationships: relationships,
            globalMethods: globalMethods,
            initialData: initialData
        )
    }
}
