/// A small schema exercising every property type, modifier and relationship shape.
let projectSchema: [String: String] = [
    "Project.json": """
    {
      "properties": {
        "name": { "type": "string", "required": true, "unique": true },
        "priority": { "type": "integer", "indexed": true, "default": 0 },
        "status": { "type": "enum", "values": ["open", "closed"] },
        "done": { "type": "boolean", "default": false },
        "due": "date",
        "budget": "number",
        "meta": "json",
        "notes": "string"
      },
      "relationships": {
        "lead": { "to": "User", "cardinality": "one", "inverse": "leads" },
        "tags": { "to": "Tag", "cardinality": "many", "inverse": "projects" }
      }
    }
    """,
    "Task.json": """
    {
      "properties": { "title": { "type": "string", "required": true } },
      "relationships": { "project": { "to": "Project", "cardinality": "one", "inverse": "tasks" } }
    }
    """,
    "Tag.json": #"{ "properties": { "name": "string" } }"#,
]
