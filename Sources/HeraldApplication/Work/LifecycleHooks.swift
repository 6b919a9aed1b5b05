import HeraldSchema
import HeraldStorage

/// What a hook sees besides `$.this`: `$.modifications` in `onSave`/`afterSave`, `$.data` in
/// `onDelete`/`afterDelete`.
public struct HookInput: Sendable {
    public var modifications: JSONValue?
    public var data: JSONValue?

    public init(modifications: JSONValue? = nil, data: JSONValue? = nil) {
        self.modifications = modifications
        self.data = data
    }
}

/// Runs lifecycle hooks on the thread that runs the unit of work meeting them (a script
/// engine's). The unit of work calls it for `on…` hooks inside the transaction; the
/// work runner calls it for `after…` hooks, each in a unit of work of its own.
public protocol LifecycleHookRunner: AnyObject {
    /// Runs `hook` with `this` and `input` inside `work`; a thrown error fails the work.
    func run(_ hook: MethodDefinition, this: EntityReference?, input: HookInput, in work: UnitOfWork) throws
}

/// Lends a hook runner on a dedicated thread, where work may block on storage.
public protocol HookThreads: Sendable {
    /// Runs `body` on a dedicated thread with the runner that lives there.
    func withRunner<T: Sendable>(_ body: @escaping @Sendable (any LifecycleHookRunner) throws -> T) async throws -> T
}

extension TypeDefinition {
    /// Whether creating (`.onCreate`), saving or deleting an object of this type runs a hook,
    /// inside the transaction or after it.
    package func hasHooks(for event: LifecycleEvent) -> Bool {
        switch event {
        case .onCreate, .afterCreate: !hooks(for: .onCreate).isEmpty || !hooks(for: .afterCreate).isEmpty
        case .onSave, .afterSave: !hooks(for: .onSave).isEmpty || !hooks(for: .afterSave).isEmpty
        case .onDelete, .afterDelete: !hooks(for: .onDelete).isEmpty || !hooks(for: .afterDelete).isEmpty
        }
    }
}
