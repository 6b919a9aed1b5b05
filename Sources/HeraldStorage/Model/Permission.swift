import Foundation

/// A right on one object, given to a user or group (and inherited through nested groups).
public enum Permission: String, Sendable, Hashable, CaseIterable {
    case read, write, delete, accessControl

    /// Parses `"read, write"` (Structr's form); unknown names are an error.
    public static func parse(_ text: String) throws(DataError) -> Set<Permission> {
        var result = Set<Permission>()
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            guard let permission = Permission(rawValue: part) else {
                throw .invalidInput("unknown permission '\(part)'; use read, write, delete or accessControl")
            }
            result.insert(permission)
        }
        return result
    }
}
