/// How far, and how fully, an object's REST form renders the objects it links to: Structr's
/// `_outputNestingDepth` and its view rules.
///
/// The object asked for is level 0 and the objects it links to level 1. Down to `depth` an
/// object shows its properties; one level deeper a linked object is `{}` and a list `[]`.
/// An object that is already being rendered further up (a link back) shows only `id`, `type`
/// and `name`, and so does every linked object when `compact` is set.
public struct Nesting: Sendable, Hashable {
    /// The deepest level whose objects show their properties.
    public var depth: Int
    /// Linked objects show only `id`, `type` and `name`, as Structr renders its `all`, `ui`
    /// and custom views.
    public var compact: Bool
    /// Linked objects are their ids and nothing else: not Structr's, the form hooks get.
    public var idsOnly: Bool

    public init(depth: Int = Self.defaultDepth, compact: Bool = false) {
        self.depth = depth
        self.compact = compact
        self.idsOnly = false
    }

    /// Structr's default `_outputNestingDepth`.
    public static let defaultDepth = 3
    /// The deepest `_outputNestingDepth` honoured; more is refused.
    public static let maximumDepth = 5
    /// Structr's default: three levels, in full.
    public static let `default` = Nesting()
    /// Linked objects as bare ids.
    public static let ids: Nesting = {
        var nesting = Nesting(depth: 0)
        nesting.idsOnly = true
        return nesting
    }()

    /// The nesting for a built-in or custom view: `public` renders linked objects in full,
    /// every other view compactly.
    public static func forView(_ name: String?, depth: Int = Self.defaultDepth) -> Nesting {
        Nesting(depth: depth, compact: name != nil && name != "public")
    }
}
