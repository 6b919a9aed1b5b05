import Foundation
import Hummingbird
import Logging
import NIOPosix

/// Hummingbird's `LocalFileSystem` that serves only files really inside its folder: a path
/// that resolves (through symlinks, `..` or otherwise) outside the folder is not found.
public struct ContainedFileSystem: FileProvider {
    public typealias FileAttributes = LocalFileSystem.FileAttributes
    public typealias FileIdentifier = LocalFileSystem.FileIdentifier

    let inner: LocalFileSystem
    /// The folder's own resolved path, without a trailing slash.
    let root: String

    public init(rootFolder: String, logger: Logger) {
        self.inner = LocalFileSystem(rootFolder: rootFolder, threadPool: .singleton, logger: logger)
        self.root = Self.resolve(rootFolder) ?? rootFolder
    }

    /// The real path of `path`, or nil when it does not exist.
    static func resolve(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    public func getFileIdentifier(_ path: String) -> FileIdentifier? {
        guard let id = inner.getFileIdentifier(path), let resolved = Self.resolve(id) else { return nil }
        guard resolved == root || resolved.hasPrefix(root + "/") else { return nil }
        return resolved
    }

    public func getAttributes(id: FileIdentifier) async throws -> FileAttributes? {
        try await inner.getAttributes(id: id)
    }

    public func loadFile(id: FileIdentifier, context: some RequestContext) async throws -> ResponseBody {
        try await inner.loadFile(id: id, context: context)
    }

    public func loadFile(id: FileIdentifier, range: ClosedRange<Int>, context: some RequestContext) async throws
        -> ResponseBody
    {
        try await inner.loadFile(id: id, range: range, context: context)
    }
}
