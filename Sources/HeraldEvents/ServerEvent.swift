/// One server-sent event as the hub hands it to streams.
public struct ServerEvent: Sendable, Hashable {
    /// Increases with every published event.
    public var id: UInt64
    /// The `event:` field; never empty, never containing CR or LF.
    public var type: String
    /// The message, sent as one `data:` line per line.
    public var data: String

    public init(id: UInt64, type: String, data: String) {
        self.id = id
        self.type = type
        self.data = data
    }

    /// Whether `type` can be an event type without breaking the framing.
    public static func isValidType(_ type: String) -> Bool {
        !type.isEmpty && !type.unicodeScalars.contains { $0 == "\r" || $0 == "\n" }
    }

    /// The event on the wire: `id:`, `event:`, one `data:` line per line of the message (split on
    /// CR, LF and CRLF), and a blank line.
    public var wireFormat: String {
        var out = "id: \(id)\nevent: \(type)\n"
        for line in Self.lines(of: data) { out += "data: \(line)\n" }
        return out + "\n"
    }

    /// Splits on CRLF, CR or LF; an empty message is one empty line.
    static func lines(of text: String) -> [Substring] {
        var lines: [Substring] = []
        var start = text.startIndex
        var index = text.startIndex
        // Character-wise, "\r\n" is one Character, so all three endings are single characters.
        while index < text.endIndex {
            let c = text[index]
            if c == "\n" || c == "\r" || c == "\r\n" {
                lines.append(text[start..<index])
                index = text.index(after: index)
                start = index
            } else {
                index = text.index(after: index)
            }
        }
        lines.append(text[start..<text.endIndex])
        return lines
    }
}

/// Who an event is for.
public enum Audience: Sendable, Hashable {
    /// Every stream of an authenticated user, of an anonymous client, or both.
    case broadcast(authenticated: Bool, anonymous: Bool)
    /// Every stream of these users.
    case users(Set<String>)
    /// Every stream subscribed to this channel (`?channels=`), whoever opened it.
    case channel(String)
    /// No stream: a record of a data change, which live queries read (``EventHub/onChanges(_:)``).
    case changes
}
