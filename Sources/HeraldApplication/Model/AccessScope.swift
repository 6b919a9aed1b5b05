import Foundation
import HeraldSchema
import HeraldStorage

/// What a caller may see and do, resolved once per transaction: the caller and every principal
/// it acts as (itself and all groups it belongs to, through nesting).
public struct AccessScope: Sendable, Hashable {
    public var caller: Caller
    public var principals: [String]

    /// Admins and the superuser see and may do everything.
    public var bypass: Bool { caller.isAdmin }

    public init(caller: Caller, principals: [String]) {
        self.caller = caller
        self.principals = principals
    }

    /// The scope of `caller`, with its groups read from storage.
    public static func of(_ caller: Caller, schema: Schema, in tx: any StorageTransaction) throws -> AccessScope {
        guard let user = caller.userID, !caller.isAdmin else { return AccessScope(caller: caller, principals: []) }
        return AccessScope(caller: caller, principals: try principals(of: user, schema: schema, in: tx))
    }

    /// `user` and every group it belongs to, through nesting, read from storage.
    static func principals(of user: String, schema: Schema, in tx: any StorageTransaction) throws -> [String] {
        var principals = [user]
        var seen: Set<String> = [user]
        var queue = [EntityReference(type: BuiltInType.user, id: user)]
        while let next = queue.popLast() {
            guard let groups = schema.types[next.type]?.relationships["groups"] else { continue }
            for group in try tx.related(groups, of: next.id) where seen.insert(group.id).inserted {
                principals.append(group.id)
                queue.append(group)
            }
        }
        return principals
    }

    /// The condition that keeps only objects the caller may read; nil when everything is visible.
    public var visibilityFilter: Filter? {
        bypass ? nil : .visibleTo(userID: caller.userID, principals: principals)
    }
}
