/// Who is making a request or running a script.
public enum Caller: Sendable, Hashable {
    /// Nobody identified.
    case anonymous
    /// The configured superuser; not stored in the database.
    case superuser
    /// A stored user.
    case user(id: String, name: String?, isAdmin: Bool)

    /// The user's id, for stored users.
    public var userID: String? {
        if case .user(let id, _, _) = self { return id }
        return nil
    }

    /// Admins and the superuser bypass access checks.
    public var isAdmin: Bool {
        switch self {
        case .anonymous: false
        case .superuser: true
        case .user(_, _, let isAdmin): isAdmin
        }
    }

    /// Whether the caller is identified at all.
    public var isAuthenticated: Bool { self != .anonymous }
}
