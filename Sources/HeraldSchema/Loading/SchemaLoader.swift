import Foundation

/// Reads a schema folder: `<Type>.json` files, `<Type>/*.js` and `global/*.js` scripts, and
/// `initial-data.json`.
public struct SchemaLoader: Sendable {
    /// The file holding the initial data.
    public static let initialDataFile = "initial-data.json"
    /// The file naming global methods to run on a cron schedule: `{"method": "*/10 * * * * *"}`.
    public static let schedulesFile = "schedules.json"
    /// The file declaring event types: `{"notification": {"description": ..., "schema": {...}}}`.
    public static let eventsFile = "events.json"
    /// The file saying who may subscribe to channels: `{"dock:*": {"subscribe": "public"}}`.
    public static let channelsFile = "channels.json"
    /// The folder holding global methods.
    public static let globalFolder = "global"

    public var directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    /// Loads and validates the whole folder; the first problem found is thrown.
    public func load() throws(SchemaError) -> Schema {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SchemaError(file: directory.path, "schema folder not found")
        }
        let entries: [String]
        do {
            entries = try fm.contentsOfDirectory(atPath: directory.path).sorted()
        } catch {
            throw SchemaError(file: directory.path, "cannot list the schema folder: \(error)")
        }
        var documents: [(name: String, file: String, json: JSONObject)] = []
        /// The files that are not types, by name.
        var files: [String: JSONValue] = [:]
        var scriptFolders: [String] = []
        for entry in entries where !entry.hasPrefix(".") {
            let url = directory.appendingPathComponent(entry)
            var entryIsDirectory: ObjCBool = false
            _ = fm.fileExists(atPath: url.path, isDirectory: &entryIsDirectory)
            if entryIsDirectory.boolValue {
                scriptFolders.append(entry)
                continue
            }
            guard entry.hasSuffix(".json") else { continue }
            if entry.hasSuffix(".schema.json") { continue }
            let json = try readJSON(entry)
            if [Self.initialDataFile, Self.schedulesFile, Self.eventsFile, Self.channelsFile].contains(entry) {
                files[entry] = json
                continue
            }
            let typeName = String(entry.dropLast(5))
            guard Naming.isTypeName(typeName) else {
                throw SchemaError(
                    file: entry,
                    "type files are named after their type in UpperCamelCase (like Comment.json)"
                )
            }
            guard case .object(let object) = json else {
                throw SchemaError(file: entry, "a type file holds a JSON object, not \(json.kindName)")
            }
            documents.append((typeName, entry, object))
        }
        var builder = SchemaBuilder()
        try builder.addTypes(documents)
        for folder in scriptFolders {
            try builder.addMethods(try readScripts(in: folder), folder: folder)
        }
        var schema = try builder.build(initialData: files[Self.initialDataFile])
        if let schedules = files[Self.schedulesFile] {
            schema.schedules = try Self.parseSchedules(schedules, methods: schema.globalMethods)
        }
        if let events = files[Self.eventsFile] { schema.events = try Self.parseEvents(events) }
        if let channels = files[Self.channelsFile] {
            schema.channels = try Self.parseChannels(channels, methods: schema.globalMethods)
        }
        return schema
    }

    static func parseEvents(_ json: JSONValue) throws(SchemaError) -> OrderedDictionary<String, EventDeclaration> {
        guard case .object(let object) = json else {
            throw SchemaError(file: eventsFile, "must be an object of event names to declarations")
        }
        var events: OrderedDictionary<String, EventDeclaration> = [:]
        for (name, value) in object where name != "$schema" {
            guard !name.isEmpty, !name.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) else {
                throw SchemaError(file: eventsFile, field: name, "an event name is non-empty, with no line breaks")
            }
            guard case .object(let declaration) = value else {
                throw SchemaError(file: eventsFile, field: name, #"must be {"description": "...", "schema": {...}}"#)
            }
            for key in declaration.keys where key != "description" && key != "schema" {
                throw SchemaError(file: eventsFile, field: "\(name).\(key)", "unknown key; use description and schema")
            }
            if let description = declaration["description"], description.stringValue == nil {
                throw SchemaError(file: eventsFile, field: "\(name).description", "must be a string")
            }
            guard let payload = declaration["schema"] else {
                throw SchemaError(
                    file: eventsFile,
                    field: "\(name).schema",
                    "is required: the JSON Schema of the payload"
                )
            }
            do {
                let schema = try JSONSchema(parsing: payload, path: "\(name).schema")
                events[name] = EventDeclaration(
                    name: name,
                    description: declaration["description"]?.stringValue,
                    schema: schema
                )
            } catch {
                throw error.in(eventsFile)
            }
        }
        return events
    }

    static func parseChannels(_ json: JSONValue, methods: [MethodDefinition]) throws(SchemaError) -> ChannelRules {
        guard case .object(let object) = json else {
            throw SchemaError(file: channelsFile, "must be an object of channel patterns to rules")
        }
        var rules: [ChannelRule] = []
        for (pattern, value) in object where pattern != "$schema" {
            let name = pattern.hasSuffix("*") ? String(pattern.dropLast()) : pattern
            guard name.isEmpty && pattern == "*" || ChannelRule.isChannelName(name), !name.contains("*") else {
                throw SchemaError(
                    file: channelsFile,
                    field: pattern,
                    "a pattern is a channel name (letters, digits and :_-./@), or a prefix of one ending in *"
                )
            }
            guard case .object(let rule) = value, case .string(let subscribe)? = rule["subscribe"] else {
                throw SchemaError(
                    file: channelsFile,
                    field: pattern,
                    #"must be {"subscribe": "public" | "authenticated" | "<global method>"}"#
                )
            }
            for key in rule.keys where key != "subscribe" {
                throw SchemaError(file: channelsFile, field: "\(pattern).\(key)", "unknown key; use subscribe")
            }
            let subscribers: ChannelRule.Subscribers
            switch subscribe {
            case "public": subscribers = .public
            case "authenticated": subscribers = .authenticated
            default:
                guard methods.contains(where: { $0.name == subscribe }) else {
                    throw SchemaError(
                        file: channelsFile,
                        field: "\(pattern).subscribe",
                        "is public, authenticated or a global method, and there is no schema/global/\(subscribe).js"
                    )
                }
                subscribers = .method(subscribe)
            }
            rules.append(ChannelRule(pattern: pattern, subscribe: subscribers))
        }
        return ChannelRules(rules)
    }

    static func parseSchedules(_ json: JSONValue, methods: [MethodDefinition]) throws(SchemaError) -> [String:
        CronSchedule]
    {
        guard case .object(let object) = json else {
            throw SchemaError(file: schedulesFile, "must be an object of global method names to cron expressions")
        }
        var schedules: [String: CronSchedule] = [:]
        for (name, value) in object where name != "$schema" {
            guard methods.contains(where: { $0.name == name }) else {
                throw SchemaError(
                    file: schedulesFile,
                    field: name,
                    "no global method '\(name)' (schema/global/\(name).js)"
                )
            }
            guard case .string(let expression) = value else {
                throw SchemaError(file: schedulesFile, field: name, "must be a cron expression string")
            }
            do {
                schedules[name] = try CronSchedule(expression)
            } catch {
                throw SchemaError(file: schedulesFile, field: name, "invalid cron expression: \(error)")
            }
        }
        return schedules
    }

    func readJSON(_ file: String) throws(SchemaError) -> JSONValue {
        let data: Data
        do {
            data = try Data(contentsOf: directory.appendingPathComponent(file))
        } catch {
            throw SchemaError(file: file, "cannot read the file: \(error.localizedDescription)")
        }
        do {
            return try JSONValue(parsing: data)
        } catch {
            throw SchemaError(file: file, "invalid JSON: \(error)")
        }
    }

    func readScripts(in folder: String) throws(SchemaError) -> [MethodDefinition] {
        let url = directory.appendingPathComponent(folder)
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
        } catch {
            throw SchemaError(file: folder, "cannot list the folder: \(error)")
        }
        var methods: [MethodDefinition] = []
        for name in names where name.hasSuffix(".js") {
            let file = "\(folder)/\(name)"
            let methodName = String(name.dropLast(3))
            guard Naming.isMethodName(methodName) else {
                throw SchemaError(file: file, "method files are named after their method in lowerCamelCase")
            }
            let source: String
            do {
                source = try String(contentsOf: url.appendingPathComponent(name), encoding: .utf8)
            } catch {
                throw SchemaError(file: file, "cannot read the file as UTF-8: \(error.localizedDescription)")
            }
            let method = MethodDefinition(
                name: methodName,
                typeName: folder == Self.globalFolder ? nil : folder,
                path: file,
                source: source
            )
            do {
                _ = try method.javaScriptBody()
            } catch {
                let (line, column) = StructrScript.filePosition(of: error, in: source)
                throw SchemaError(file: file, "StructrScript: line \(line), column \(column): \(error.message)")
            }
            methods.append(method)
        }
        return methods
    }
}

/// Rules for names in the schema.
public enum Naming {
    /// UpperCamelCase: a capital letter, then letters and digits.
    public static func isTypeName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, ("A"..."Z").contains(first) else { return false }
        return s.unicodeScalars.allSatisfy { isASCIIAlphanumeric($0) } && s.count <= 64
    }

    /// lowerCamelCase: a lowercase letter, then letters, digits and underscores.
    public static func isPropertyName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, ("a"..."z").contains(first) else { return false }
        return s.unicodeScalars.allSatisfy { isASCIIAlphanumeric($0) || $0 == "_" } && s.count <= 64
    }

    /// Method names follow the property rule.
    public static func isMethodName(_ s: String) -> Bool { isPropertyName(s) }

    public static func isASCIIAlphanumeric(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
    }
}
