/// An event type declared in `events.json`: what it means and the shape of its payload.
public struct EventDeclaration: Sendable, Hashable {
    public var name: String
    public var description: String?
    public var schema: JSONSchema

    public init(name: String, description: String?, schema: JSONSchema) {
        self.name = name
        self.description = description
        self.schema = schema
    }

    /// Checks an event's message: a string that is JSON is its JSON value (as a hook that sends
    /// `JSON.stringify(...)` means it), any other string is the string itself.
    public func validate(message data: String) throws(JSONSchema.Mismatch) {
        try schema.validate((try? JSONValue(parsing: data)) ?? .string(data))
    }
}

/// Who may subscribe to channels whose names match a pattern, from `channels.json`.
public struct ChannelRule: Sendable, Hashable {
    /// Who decides.
    public enum Subscribers: Sendable, Hashable {
        /// Anyone, signed in or not.
        case `public`
        /// Any signed-in caller.
        case authenticated
        /// The global method of that name, run as the caller with `$.arguments.channel`; a truthy
        /// result lets the caller in.
        case method(String)

        /// As `channels.json` writes it: `public`, `authenticated` or the method's name.
        public var name: String {
            switch self {
            case .public: "public"
            case .authenticated: "authenticated"
            case .method(let name): name
            }
        }
    }

    /// An exact channel name, or a prefix ending in `*` (`dock:*`); `*` alone matches all.
    public var pattern: String
    public var subscribe: Subscribers

    public init(pattern: String, subscribe: Subscribers) {
        self.pattern = pattern
        self.subscribe = subscribe
    }

    /// Whether the pattern ends in `*`.
    public var isPrefix: Bool { pattern.hasSuffix("*") }

    /// Whether `name` can name a channel: 1 to 128 letters, digits and `:_-./@`, so that a list
    /// of them separated by commas is unambiguous in a URL.
    public static func isChannelName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128
            && name.unicodeScalars.allSatisfy { Naming.isASCIIAlphanumeric($0) || ":_-./@".unicodeScalars.contains($0) }
    }
}

/// The channel rules of a schema, looked up by channel name: an exact pattern first, else the
/// longest matching prefix.
public struct ChannelRules: Sendable, Hashable {
    public private(set) var exact: [String: ChannelRule] = [:]
    /// Prefix patterns, longest first.
    public private(set) var prefixes: [ChannelRule] = []

    public init(_ rules: [ChannelRule] = []) {
        for rule in rules {
            if rule.isPrefix { prefixes.append(rule) } else { exact[rule.pattern] = rule }
        }
        prefixes.sort { $0.pattern.count > $1.pattern.count }
    }

    /// Every rule, exact ones first.
    public var all: [ChannelRule] { exact.values.sorted { $0.pattern < $1.pattern } + prefixes }

    public var isEmpty: Bool { exact.isEmpty && prefixes.isEmpty }

    /// The rule for a channel, nil when none is declared.
    public func rule(for channel: String) -> ChannelRule? {
        if let rule = exact[channel] { return rule }
        return prefixes.first { channel.hasPrefix($0.pattern.dropLast()) }
    }
}
