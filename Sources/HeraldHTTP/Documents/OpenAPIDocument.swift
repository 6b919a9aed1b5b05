import HeraldApplication
import HeraldSchema

/// The OpenAPI 3.1 document of a schema's REST API: every type's endpoints with their query
/// parameters, bodies and answers, the methods, the error shape, the security schemes, the
/// EventSource endpoint and the declared events. Served at `/structr/openapi`.
public struct OpenAPIDocument: Sendable {
    public let schema: Schema
    public let eventSourcePath: String

    public init(schema: Schema, eventSourcePath: String = "/structr/EventSource") {
        self.schema = schema
        self.eventSourcePath = eventSourcePath
    }

    static let rest = RESTController.root

    /// The document as JSON.
    public var json: JSONValue {
        var paths: JSONObject = [:]
        addBuiltIns(&paths)
        for type in schema.types.values { addType(type, &paths) }
        for method in schema.globalMethods.sorted(by: { $0.name < $1.name }) {
            paths["\(Self.rest)/\(method.name)"] = [
                "post": operation(
                    "Run the global method \(method.name)",
                    id: "call_\(method.name)",
                    tag: "Global methods",
                    body: Self.ref("MethodArguments"),
                    responses: ["200": Self.envelope(["description": "Whatever the method returned"])]
                )
            ]
        }
        addEventSource(&paths)
        let ref = Self.ref
        var schemas: JSONObject = [
            "Error": [
                "type": "object",
                "required": ["code", "message"],
                "properties": [
                    "code": ["type": "integer", "description": "The HTTP status"],
                    "message": ["type": "string"],
                    "errors": [
                        "type": "array",
                        "description": "Validation errors, each naming the type, the property and a token",
                        "items": [
                            "type": "object",
                            "properties": [
                                "type": ["type": "string"], "property": ["type": "string"], "token": ["type": "string"],
                            ],
                        ],
                    ],
                ],
            ],
            "Reference": [
                "description": .string(
                    "A related object, with the properties the nesting depth allows: in full, as id, type and "
                        + "name, or empty below _outputNestingDepth"
                ),
                "type": "object",
                "properties": ["id": ref("Id"), "type": ["type": "string"], "name": ["type": ["string", "null"]]],
            ],
            "Id": ["type": "string", "pattern": "^[0-9a-f]{32}$"],
            "Link": [
                "description": "A related object named by its id, or an object holding the id",
                "oneOf": [
                    Self.ref("Id"),
                    ["type": "object", "required": ["id"], "properties": ["id": Self.ref("Id")]],
                ],
            ],
            "MethodArguments": [
                "type": "object",
                "description": "The method's $.arguments",
                "additionalProperties": true,
            ],
            "Credentials": [
                "type": "object",
                "required": ["password"],
                "properties": [
                    "name": ["type": "string"], "eMail": ["type": "string"], "password": ["type": "string"],
                ],
            ],
        ]
        for type in schema.types.values {
            schemas[type.name] = objectSchema(type)
            schemas["\(type.name)Input"] = inputSchema(type, creating: false)
            schemas["\(type.name)Create"] = inputSchema(type, creating: true)
        }
        for event in schema.events.values {
            var payload = event.schema.source
            if case .object(var object) = payload {
                object.removeValue(forKey: "$schema")
                if let description = event.description, object["description"] == nil {
                    object["description"] = .string(description)
                }
                payload = .object(object)
            }
            schemas["Event_\(Self.componentName(event.name))"] = payload
        }
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "Herald REST API",
                "version": "1",
                "description": .string(
                    "The REST API of this schema, as Herald serves it: Structr's URLs and answers. "
                        + "Access is decided by resource grants (ResourceAccess) and each object's visibility."
                ),
            ],
            "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
            "servers": [["url": "/"]],
            "security": [
                [:], ["sessionCookie": []], ["bearerToken": []], ["userHeader": [], "passwordHeader": []],
            ],
            "paths": .object(paths),
            "components": [
                "schemas": .object(schemas),
                "securitySchemes": [
                    "sessionCookie": [
                        "type": "apiKey", "in": "cookie", "name": "JSESSIONID",
                        "description": "The session of POST /structr/rest/login",
                    ],
                    "bearerToken": [
                        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                        "description": "An access token from POST /structr/rest/token",
                    ],
                    "userHeader": ["type": "apiKey", "in": "header", "name": "X-User"],
                    "passwordHeader": ["type": "apiKey", "in": "header", "name": "X-Password"],
                ],
                "responses": [
                    "Error": [
                        "description": "Refused: the status and a message naming the problem",
                        "content": ["application/json": ["schema": Self.ref("Error")]],
                    ]
                ],
            ],
            "x-herald-events": .object(
                JSONObject(
                    uniqueKeysWithValues: schema.events.values.map {
                        ($0.name, Self.ref("Event_\(Self.componentName($0.name))"))
                    }
                )
            ),
            "x-herald-channels": .object(
                JSONObject(
                    uniqueKeysWithValues: schema.channels.all.map { rule in
                        (rule.pattern, ["subscribe": .string(rule.subscribe.name)])
                    }
                )
            ),
        ]
    }

    /// A component name for an event type (letters, digits, `.`, `-` and `_` only).
    static func componentName(_ name: String) -> String {
        String(
            name.unicodeScalars.map { scalar in
                Naming.isASCIIAlphanumeric(scalar) || "-._".unicodeScalars.contains(scalar) ? Character(scalar) : "_"
            }
        )
    }

    static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }

    /// Structr's envelope: `result` and the counts and timings around it.
    static func envelope(_ result: JSONValue, list: Bool = false) -> JSONValue {
        var properties: JSONObject = [
            "result": list ? ["type": "array", "items": result] : result,
            "result_count": ["type": "integer"],
            "page_count": ["type": "integer"],
            "query_time": ["type": "string"],
            "serialization_time": ["type": "string"],
            "result_count_time": ["type": "string"],
        ]
        if list {
            properties["page"] = ["type": "integer"]
            properties["page_size"] = ["type": "integer"]
        }
        return ["type": "object", "required": ["result"], "properties": .object(properties)]
    }

    func operation(
        _ summary: String,
        id: String,
        tag: String,
        parameters: [JSONValue] = [],
        body: JSONValue? = nil,
        bodyRequired: Bool = false,
        responses: JSONObject
    ) -> JSONValue {
        var operation: JSONObject = ["summary": .string(summary), "operationId": .string(id), "tags": [.string(tag)]]
        if !parameters.isEmpty { operation["parameters"] = .array(parameters) }
        if let body {
            operation["requestBody"] = [
                "required": .bool(bodyRequired), "content": ["application/json": ["schema": body]],
            ]
        }
        var answers = responses.mapValues { value -> JSONValue in
            guard case .object(var object) = value, object["content"] == nil else { return value }
            // Shorthand: a bare schema (with its description) becomes a JSON answer.
            let description = object.removeValue(forKey: "description") ?? "OK"
            return ["description": description, "content": ["application/json": ["schema": .object(object)]]]
        }
        answers["default"] = ["$ref": "#/components/responses/Error"]
        operation["responses"] = .object(answers)
        return .object(operation)
    }

    static let idParameter: JSONValue = [
        "name": "id", "in": "path", "required": true, "schema": ref("Id"),
    ]

    static let pagingParameters: [JSONValue] = [
        [
            "name": "_page", "in": "query",
            "schema": ["type": "integer", "minimum": 1, "maximum": .int(Int64(Int32.max))],
        ],
        [
            "name": "_pageSize", "in": "query",
            "schema": ["type": "integer", "minimum": 1, "maximum": .int(Int64(RESTQuery.maximumPageSize))],
        ],
        ["name": "_order", "in": "query", "schema": ["enum": ["asc", "desc"]]],
        [
            "name": "_inexact", "in": "query", "description": "Filters match substrings, case-insensitively",
            "schema": ["type": "boolean"],
        ],
    ]

    static let depthParameter: JSONValue = [
        "name": "_outputNestingDepth", "in": "query",
        "description": "How deep related objects are shown",
        "schema": ["type": "integer", "minimum": 0, "maximum": .int(Int64(Nesting.maximumDepth))],
    ]

    func listParameters(_ type: TypeDefinition) -> [JSONValue] {
        var sortable: [JSONValue] = ["id", "owner"]
        var filters: [JSONValue] = []
        for property in type.properties.values where !property.writeOnly {
            sortable.append(.string(property.name))
        }
        for name in ["createdDate", "lastModifiedDate"] { sortable.append(.string(name)) }
        for property in type.properties.values where !property.writeOnly && property.type != .json {
            filters.append([
                "name": .string(property.name), "in": "query",
                "description": .string("Only objects whose \(property.name) matches (Structr search syntax)"),
                "schema": ["type": "string"],
            ])
        }
        return Self.pagingParameters + [
            ["name": "_sort", "in": "query", "schema": ["enum": .array(sortable)]], Self.depthParameter,
        ] + filters
    }

    func addType(_ type: TypeDefinition, _ paths: inout JSONObject) {
        let name = type.name
        let base = "\(Self.rest)/\(name)"
        let one = Self.ref(name)
        let ids = Self.envelope(["type": "array", "items": Self.ref("Id")])
        paths[base] = [
            "get": operation(
                "List \(name) objects the caller can see",
                id: "list\(name)",
                tag: name,
                parameters: listParameters(type),
                responses: ["200": Self.envelope(one, list: true)]
            ),
            "post": operation(
                "Create one \(name), or several from a list",
                id: "create\(name)",
                tag: name,
                body: ["oneOf": [Self.ref("\(name)Create"), ["type": "array", "items": Self.ref("\(name)Create")]]],
                bodyRequired: true,
                responses: ["201": ids.merging(description: "The ids of the new objects")]
            ),
            "patch": operation(
                "Change several \(name) objects, each named by its id",
                id: "update\(name)List",
                tag: name,
                body: [
                    "type": "array",
                    "items": [
                        "allOf": [Self.ref("\(name)Input"), ["type": "object", "required": ["id"]]]
                    ],
                ],
                bodyRequired: true,
                responses: ["200": ids.merging(description: "The ids of the changed objects")]
            ),
        ]
        paths["\(base)/{id}"] = [
            "parameters": [Self.idParameter],
            "get": operation(
                "One \(name)",
                id: "get\(name)",
                tag: name,
                parameters: [Self.depthParameter],
                responses: ["200": Self.envelope(one)]
            ),
            "put": operation(
                "Change one \(name)",
                id: "update\(name)",
                tag: name,
                body: Self.ref("\(name)Input"),
                bodyRequired: true,
                responses: ["200": Self.envelope(one)]
            ),
            "delete": operation(
                "Delete one \(name)",
                id: "delete\(name)",
                tag: name,
                responses: [
                    "200": Self.envelope([
                        "type": "object",
                        "properties": [
                            "id": ["type": "string"], "type": ["type": "string"], "deleted": ["type": "boolean"],
                        ],
                    ])
                ]
            ),
        ]
        for end in type.relationships.values {
            let targets: JSONValue =
                end.otherTypes.count == 1
                ? Self.ref(end.otherTypes[0]) : ["oneOf": .array(end.otherTypes.map(Self.ref))]
            var item: JSONObject = [
                "parameters": [Self.idParameter],
                "get": operation(
                    "The objects in \(name).\(end.name)",
                    id: "list\(name)\(Self.capitalized(end.name))",
                    tag: name,
                    parameters: Self.pagingParameters + [Self.depthParameter],
                    responses: ["200": Self.envelope(targets, list: true)]
                ),
            ]
            if end.otherTypes.count == 1 {
                item["post"] = operation(
                    "Create a \(end.otherTypes[0]) in \(name).\(end.name)",
                    id: "create\(name)\(Self.capitalized(end.name))",
                    tag: name,
                    body: Self.ref("\(end.otherTypes[0])Create"),
                    bodyRequired: true,
                    responses: ["201": ids.merging(description: "The id of the new object")]
                )
            }
            paths["\(base)/{id}/\(end.name)"] = .object(item)
        }
        for view in type.views.keys {
            paths["\(base)/\(view)"] = [
                "get": operation(
                    "List \(name) objects in the view \(view)",
                    id: "list\(name)View\(Self.capitalized(view))",
                    tag: name,
                    parameters: listParameters(type),
                    responses: ["200": Self.envelope(["type": "object"], list: true)]
                )
            ]
            paths["\(base)/{id}/\(view)"] = [
                "parameters": [Self.idParameter],
                "get": operation(
                    "One \(name) in the view \(view)",
                    id: "get\(name)View\(Self.capitalized(view))",
                    tag: name,
                    parameters: [Self.depthParameter],
                    responses: ["200": Self.envelope(["type": "object"])]
                ),
            ]
        }
        for method in type.methods where method.lifecycleEvent == nil {
            let result = Self.envelope(["description": "Whatever the method returned"])
            paths["\(base)/\(method.name)"] = [
                "post": operation(
                    "Run \(name).\(method.name) without an object",
                    id: "call\(name)\(Self.capitalized(method.name))",
                    tag: name,
                    body: Self.ref("MethodArguments"),
                    responses: ["200": result]
                )
            ]
            paths["\(base)/{id}/\(method.name)"] = [
                "parameters": [Self.idParameter],
                "post": operation(
                    "Run \(name).\(method.name) on one object",
                    id: "call\(name)\(Self.capitalized(method.name))On",
                    tag: name,
                    body: Self.ref("MethodArguments"),
                    responses: ["200": result]
                ),
            ]
        }
    }

    func addBuiltIns(_ paths: inout JSONObject) {
        let user = Self.envelope(Self.ref(BuiltInType.user))
        paths["\(Self.rest)/login"] = [
            "post": operation(
                "Log in: a new session, in the JSESSIONID cookie",
                id: "login",
                tag: "Sessions",
                body: Self.ref("Credentials"),
                bodyRequired: true,
                responses: ["200": user]
            )
        ]
        paths["\(Self.rest)/logout"] = [
            "post": operation(
                "End the session of the cookie",
                id: "logout",
                tag: "Sessions",
                responses: ["200": ["type": "object", "properties": ["result": ["type": "null"]]]]
            )
        ]
        paths["\(Self.rest)/me"] = [
            "get": operation("The caller", id: "me", tag: "Sessions", responses: ["200": user])
        ]
        paths["\(Self.rest)/token"] = [
            "post": operation(
                "Tokens for a name and password, or for a refresh token",
                id: "token",
                tag: "Sessions",
                body: [
                    "oneOf": [
                        Self.ref("Credentials"),
                        [
                            "type": "object", "required": ["refresh_token"],
                            "properties": ["refresh_token": ["type": "string"]],
                        ],
                    ]
                ],
                bodyRequired: true,
                responses: [
                    "200": [
                        "type": "object",
                        "required": ["access_token", "refresh_token"],
                        "properties": [
                            "access_token": ["type": "string"], "refresh_token": ["type": "string"],
                            "expiration_date": ["type": "integer"], "token_type": ["type": "string"],
                        ],
                    ]
                ]
            )
        ]
        paths["\(Self.rest)/_schema"] = [
            "get": operation(
                "The schema: types, relationships, methods, and when it was loaded",
                id: "schema",
                tag: "Schema",
                responses: ["200": Self.envelope(["type": "object"])]
            )
        ]
    }

    func addEventSource(_ paths: inout JSONObject) {
        paths[eventSourcePath] = [
            "get": [
                "summary": "Server-sent events for the caller, and for the channels asked for",
                "operationId": "eventSource",
                "tags": ["Events"],
                "parameters": [
                    [
                        "name": "channels", "in": "query",
                        "description": "Channels to subscribe to, separated by commas (channels.json decides who may)",
                        "schema": ["type": "string"],
                    ],
                    [
                        "name": "lastEventId", "in": "query",
                        "description": "Replay after this id, for clients that cannot send Last-Event-ID",
                        "schema": ["type": "integer", "minimum": 0],
                    ],
                    ["name": "Last-Event-ID", "in": "header", "schema": ["type": "integer", "minimum": 0]],
                ],
                "responses": [
                    "200": [
                        "description": "An endless stream; each event's data is described in x-herald-events",
                        "content": ["text/event-stream": ["schema": ["type": "string"]]],
                    ],
                    "default": ["$ref": "#/components/responses/Error"],
                ],
            ]
        ]
    }

    static func capitalized(_ name: String) -> String { name.prefix(1).uppercased() + name.dropFirst() }

    /// A property's value as JSON Schema; every value may also be null.
    static func valueSchema(_ type: PropertyType) -> JSONValue {
        switch type {
        case .string, .password: ["type": ["string", "null"]]
        case .integer: ["type": ["integer", "null"]]
        case .number: ["type": ["number", "null"]]
        case .boolean: ["type": ["boolean", "null"]]
        case .date: ["type": ["string", "null"], "format": "date-time"]
        case .enumeration(let values): ["enum": .array(values.map(JSONValue.string) + [.null])]
        case .json: [:]
        }
    }

    func objectSchema(_ type: TypeDefinition) -> JSONValue {
        var properties: JSONObject = ["id": Self.ref("Id"), "type": ["const": .string(type.name)]]
        for property in type.properties.values where !property.writeOnly {
            properties[property.name] = Self.valueSchema(property.type)
        }
        for end in type.relationships.values {
            let reference: JSONValue = ["anyOf": [Self.ref("Reference"), ["type": "null"]]]
            properties[end.name] =
                end.cardinality == .many ? ["type": "array", "items": Self.ref("Reference")] : reference
        }
        for (name, definition) in SystemProperty.definitions.sorted(by: { $0.key < $1.key }) {
            properties[name] = Self.valueSchema(definition.type)
        }
        properties[SystemProperty.owner] = ["anyOf": [Self.ref("Reference"), ["type": "null"]]]
        return ["type": "object", "required": ["id", "type"], "properties": .object(properties)]
    }

    func inputSchema(_ type: TypeDefinition, creating: Bool) -> JSONValue {
        var properties: JSONObject = [:]
        var required: [JSONValue] = []
        for property in type.properties.values where !property.readOnly {
            var value = Self.valueSchema(property.type)
            if property.required, case .object(var object) = value {
                // A required property takes no null, and a required string is not empty.
                switch property.type {
                case .string, .password: object = ["type": "string", "minLength": 1]
                case .integer: object = ["type": "integer"]
                case .number: object = ["type": "number"]
                case .boolean: object = ["type": "boolean"]
                case .date: object = ["type": "string", "format": "date-time"]
                case .enumeration(let values): object = ["enum": .array(values.map(JSONValue.string))]
                case .json: break
                }
                value = .object(object)
                if creating && property.defaultValue == nil { required.append(.string(property.name)) }
            }
            properties[property.name] = value
        }
        for end in type.relationships.values {
            properties[end.name] =
                end.cardinality == .many
                ? ["type": "array", "items": Self.ref("Link")] : ["anyOf": [Self.ref("Link"), ["type": "null"]]]
        }
        for name in [SystemProperty.visibleToPublicUsers, SystemProperty.visibleToAuthenticatedUsers] {
            properties[name] = ["type": "boolean"]
        }
        var object: JSONObject = ["type": "object", "properties": .object(properties)]
        if !required.isEmpty { object["required"] = .array(required) }
        return .object(object)
    }
}

extension JSONValue {
    /// This object with a `description` member, for answers written as bare schemas.
    func merging(description: String) -> JSONValue {
        guard case .object(var object) = self else { return self }
        object["description"] = .string(description)
        return .object(object)
    }
}
