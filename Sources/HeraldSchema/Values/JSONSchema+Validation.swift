import Foundation

extension JSONSchema {
    /// A value that does not match: where (`message.author.id`) and why.
    public struct Mismatch: Error, Sendable, Hashable, CustomStringConvertible {
        public var path: String
        public var reason: String

        public var description: String { "\(path): \(reason)" }
    }

    /// Checks `value`; the first mismatch found is thrown. `path` names the value (`message`).
    public func validate(_ value: JSONValue, path: String = "message") throws(Mismatch) {
        if let types, !types.contains(where: { Self.matches(value, $0) }) {
            let wanted =
                types.isEmpty ? "nothing (the schema is false)" : types.map(\.rawValue).joined(separator: " or ")
            throw Mismatch(path: path, reason: "expected \(wanted), got \(value.kindName)")
        }
        if let enumValues, !enumValues.contains(where: { Self.equal($0, value) }) {
            throw Mismatch(path: path, reason: "must be one of \(enumValues.map(\.jsonString).joined(separator: ", "))")
        }
        if let constValue, !Self.equal(constValue, value) {
            throw Mismatch(path: path, reason: "must be \(constValue.jsonString)")
        }
        switch value {
        case .object(let object): try validateMembers(object, path: path)
        case .array(let elements):
            if let minItems, elements.count < minItems {
                throw Mismatch(path: path, reason: "needs at least \(minItems) items, has \(elements.count)")
            }
            if let maxItems, elements.count > maxItems {
                throw Mismatch(path: path, reason: "allows at most \(maxItems) items, has \(elements.count)")
            }
            if let items {
                for (index, element) in elements.enumerated() { try items.validate(element, path: "\(path)[\(index)]") }
            }
        case .string(let text):
            let length = text.unicodeScalars.count
            if let minLength, length < minLength {
                throw Mismatch(path: path, reason: "needs at least \(minLength) characters, has \(length)")
            }
            if let maxLength, length > maxLength {
                throw Mismatch(path: path, reason: "allows at most \(maxLength) characters, has \(length)")
            }
            if let pattern, let expression = try? NSRegularExpression(pattern: pattern),
                expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) == nil
            {
                throw Mismatch(path: path, reason: "does not match the pattern \(pattern)")
            }
        case .int, .double:
            try validateNumber(value.doubleValue ?? 0, path: path)
        case .null, .bool: break
        }
        for schema in allOf { try schema.validate(value, path: path) }
        if !anyOf.isEmpty, !anyOf.contains(where: { (try? $0.validate(value, path: path)) != nil }) {
            throw Mismatch(path: path, reason: "matches none of the schemas of anyOf")
        }
        if !oneOf.isEmpty {
            let matching = oneOf.count { (try? $0.validate(value, path: path)) != nil }
            if matching != 1 {
                throw Mismatch(path: path, reason: "matches \(matching) of the schemas of oneOf, not exactly one")
            }
        }
    }

    private func validateMembers(_ object: JSONObject, path: String) throws(Mismatch) {
        for name in required where object[name] == nil {
            throw Mismatch(path: "\(path).\(name)", reason: "is required")
        }
        for (name, member) in object {
            if let schema = properties[name] {
                try schema.validate(member, path: "\(path).\(name)")
            } else if !allowsAdditional {
                throw Mismatch(path: "\(path).\(name)", reason: "is not a declared member")
            } else if let additionalSchema {
                try additionalSchema.validate(member, path: "\(path).\(name)")
            }
        }
    }

    private func validateNumber(_ number: Double, path: String) throws(Mismatch) {
        if let minimum, number < minimum { throw Mismatch(path: path, reason: "must be at least \(minimum)") }
        if let maximum, number > maximum { throw Mismatch(path: path, reason: "must be at most \(maximum)") }
        if let exclusiveMinimum, number <= exclusiveMinimum {
            throw Mismatch(path: path, reason: "must be more than \(exclusiveMinimum)")
        }
        if let exclusiveMaximum, number >= exclusiveMaximum {
            throw Mismatch(path: path, reason: "must be less than \(exclusiveMaximum)")
        }
    }

    static func matches(_ value: JSONValue, _ kind: Kind) -> Bool {
        switch (kind, value) {
        case (.null, .null), (.boolean, .bool), (.string, .string), (.array, .array), (.object, .object): true
        case (.number, .int), (.number, .double): true
        case (.integer, _): value.intValue != nil && value.doubleValue != nil
        default: false
        }
    }

    /// JSON equality, with numbers compared by value (1 equals 1.0).
    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if let x = a.doubleValue, let y = b.doubleValue { return x == y }
        return a == b
    }
}
