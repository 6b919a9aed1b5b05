import HTTPTypes
import HeraldApplication
import HeraldStorage
import Hummingbird
import NIOCore

/// What the server says about its own API, made anew from the schema in force after every
/// reload: `GET /structr/openapi` (also `.json`), the OpenAPI 3.1 document, and
/// `GET /structr/client.js` and `/structr/client.ts`, the generated client module. Each needs the
/// `_openapi` GET grant, like `_schema`.
public struct DocumentsController: Sendable {
    public static let openAPIPath = "/structr/openapi"
    public static let clientPath = "/structr/client"

    let workRunner: WorkRunner
    let policy: any AccessPolicy
    let eventSourcePath: String

    public init(workRunner: WorkRunner, policy: any AccessPolicy, eventSourcePath: String) {
        self.workRunner = workRunner
        self.policy = policy
        self.eventSourcePath = eventSourcePath
    }

    public func register(on router: Router<HeraldRequestContext>) {
        for path in [Self.openAPIPath, "\(Self.openAPIPath).json"] {
            router.get(RouterPath(path)) { _, context in
                try await authorize(context)
                return Response.json(
                    OpenAPIDocument(schema: workRunner.model.schema, eventSourcePath: eventSourcePath).json
                )
            }
        }
        for (suffix, language, type) in [
            ("js", ClientModule.Language.javaScript, "text/javascript"),
            ("ts", ClientModule.Language.typeScript, "application/typescript"),
        ] {
            router.get(RouterPath("\(Self.clientPath).\(suffix)")) { _, context in
                try await authorize(context)
                var headers = HTTPFields()
                headers[.contentType] = "\(type); charset=utf-8"
                headers[.cacheControl] = "no-cache"
                let source = ClientModule(schema: workRunner.model.schema, language: language).source
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: source)))
            }
        }
    }

    func authorize(_ context: HeraldRequestContext) async throws {
        try await policy.authorize(context.caller, RESTOperation(method: .get, signature: "_openapi"))
    }
}
