import HeraldSchema
import HeraldStorage

extension ObjectChange {
    /// The change as the event log keeps it.
    var logData: String {
        JSONValue.object([
            "type": .string(type), "id": .string(id), "op": .string(kind.rawValue),
            "keys": .array(keys.sorted().map(JSONValue.string)),
        ]).jsonString
    }

    /// A change read back from the log.
    init?(logData: String) {
        guard case .object(let object)? = try? JSONValue(parsing: logData),
            let type = object["type"]?.stringValue, let id = object["id"]?.stringValue,
            let kind = object["op"]?.stringValue.flatMap(Kind.init(rawValue:))
        else { return nil }
        self.init(
            type: type,
            id: id,
            kind: kind,
            keys: Set(object["keys"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        )
    }
}
