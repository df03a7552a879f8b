import Hub
import Hummingbird
import Logging
import NIOCore

/// The request context: who is signed in (set by `SessionMiddleware`) and from which address.
public struct HubRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    public var user: User? = nil
    public var csrf: String? = nil
    public var sessionToken: String? = nil
    /// The client's address as a trusted reverse proxy reports it (`X-Forwarded-For`), set by
    /// `SecurityMiddleware`; nil when the peer is the client.
    public var forwardedAddress: String? = nil

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The address the connection comes from.
    public var peerAddress: String {
        guard let a = remoteAddress else { return "unknown" }
        return a.ipAddress ?? a.description
    }

    /// The client address for the audit log and the sign-in throttle: behind a trusted proxy,
    /// the one it reports.
    public var address: String { forwardedAddress ?? peerAddress }
}

/// Resolves the session cookie into a user on every request.
struct SessionMiddleware: RouterMiddleware {
    typealias Context = HubRequestContext
    let store: any AccessStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let token = request.cookies["hub_session"]?.value, token.count == 64,
           let (user, csrf) = try await BlockingPool.run({ [store] in try store.session(token: token) }) {
            context.user = user
            context.csrf = csrf
            context.sessionToken = token
        }
        return try await next(request, context)
    }
}
