/// A problem in the schema folder, naming the file and the field.
public struct SchemaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file, relative to the schema folder.
    public var file: String
    /// The field path inside the file (`properties.priority.type`), if the problem is in one.
    public var field: String?
    public var message: String

    public init(file: String, field: String? = nil, _ message: String) {
        self.file = file
        self.field = field
        self.message = message
    }

    public var description: String {
        if let field { return "\(file): \(field): \(message)" }
        return "\(file): \(message)"
    }
}
