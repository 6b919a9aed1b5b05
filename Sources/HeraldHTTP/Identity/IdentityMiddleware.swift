import Hummingbird

/// The one place where the caller is identified; everything after it reads `context.caller`.
public struct IdentityMiddleware: RouterMiddleware {
    public typealias Context = HeraldRequestContext

    let authenticator: AuthenticatorChain

    public init(authenticator: AuthenticatorChain) {
        self.authenticator = authenticator
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws
        -> Response
    {
        var context = context
        context.caller = try await authenticator.authenticate(request, context: context)
        return try await next(request, context)
    }
}
