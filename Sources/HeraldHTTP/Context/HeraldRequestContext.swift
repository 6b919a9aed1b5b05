import HeraldStorage
import Hummingbird

/// The request context: Hummingbird's core storage plus the identified caller.
public struct HeraldRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Who is calling; set once by `IdentityMiddleware`.
    public var caller: Caller = .anonymous

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }
}
