import HeraldApplication
import HeraldSchema
import HeraldStorage
import Logging

/// Decides who may subscribe to a channel, by the rules of the schema's `channels.json`.
public struct ChannelAccess: Sendable {
    let methods: MethodRunner
    let logger: Logger

    public init(methods: MethodRunner, logger: Logger) {
        self.methods = methods
        self.logger = logger
    }

    /// Allows `caller` into every one of `channels`, or throws `DataError.forbidden` naming the
    /// first channel refused: undeclared, for signed-in callers only, or refused by its method
    /// (a method that fails refuses, and its failure is logged, not shown).
    public func authorize(_ channels: [String], for caller: Caller) async throws {
        let schema = methods.workRunner.model.schema
        for channel in channels {
            guard let rule = schema.channels.rule(for: channel) else {
                throw DataError.forbidden("No pattern in channels.json matches the channel '\(channel)'")
            }
            switch rule.subscribe {
            case .public: continue
            case .authenticated:
                guard caller.isAuthenticated else {
                    throw DataError.forbidden("The channel '\(channel)' is for signed-in users")
                }
            case .method(let name):
                guard let method = schema.globalMethods.first(where: { $0.name == name }) else {
                    throw DataError.forbidden("The channel '\(channel)' names no global method '\(name)'")
                }
                let allowed: Bool
                do {
                    let result = try await methods.call(
                        method: method,
                        id: nil,
                        arguments: ["channel": .string(channel)],
                        request: [:],
                        caller: caller
                    )
                    allowed = Self.isTruthy(result)
                } catch {
                    logger.warning("the subscribe method \(name) failed for the channel \(channel): \(error)")
                    allowed = false
                }
                guard allowed else {
                    throw DataError.forbidden("The channel '\(channel)' is not open to this caller (\(name) said no)")
                }
            }
        }
    }

    /// JavaScript truthiness of a method's JSON result.
    static func isTruthy(_ value: JSONValue) -> Bool {
        switch value {
        case .null: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0 && !d.isNaN
        case .string(let s): !s.isEmpty
        case .array, .object: true
        }
    }
}
