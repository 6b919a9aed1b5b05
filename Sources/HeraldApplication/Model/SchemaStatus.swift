import Foundation
import HeraldSchema
import Synchronization

/// When the schema in force was loaded, and the last edit that was refused: what the admin
/// console shows next to the schema (`GET /structr/rest/_schema`).
public final class SchemaStatus: Sendable {
    /// A refused edit: the file and field it names, as the log shows it.
    public struct Refusal: Sendable, Hashable {
        public var file: String?
        public var field: String?
        public var message: String
        public var at: Timestamp
    }

    private let state = Mutex<(loaded: Timestamp, generation: Int64, refusal: Refusal?)>((.now, 0, nil))

    public init() {}

    /// A schema of `generation` now serves; an earlier refusal is history.
    public func loaded(generation: Int64) {
        state.withLock { $0 = (.now, generation, nil) }
    }

    /// An edit was refused with `error`; the last good schema keeps serving.
    public func refused(_ error: any Error) {
        var refusal = Refusal(file: nil, field: nil, message: "\(error)", at: .now)
        if let error = error as? SchemaError {
            refusal.file = error.file
            refusal.field = error.field
            refusal.message = error.message
        }
        state.withLock { $0.refusal = refusal }
    }

    /// `{"loadedAt", "generation", "refused": null | {"file", "field", "message", "at"}}`.
    public var json: JSONValue {
        let (loaded, generation, refusal) = state.withLock { ($0.loaded, $0.generation, $0.refusal) }
        var refused = JSONValue.null
        if let refusal {
            refused = [
                "file": refusal.file.map(JSONValue.string) ?? .null,
                "field": refusal.field.map(JSONValue.string) ?? .null,
                "message": .string(refusal.message),
                "at": .string(refusal.at.iso8601),
            ]
        }
        return ["loadedAt": .string(loaded.iso8601), "generation": .int(generation), "refused": refused]
    }
}
