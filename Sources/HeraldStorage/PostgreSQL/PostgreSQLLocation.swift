import Foundation
import NIOSSL
import PostgresNIO

/// Where a PostgreSQL database is, from a URL of the form
/// `postgresql://user:password@host:port/dbname?sslmode=prefer`.
///
/// `sslmode` is one of `disable`, `prefer` (the default, as libpq's), `require` (both without
/// checking the certificate, as libpq's) and `verify-full`. The password never appears in
/// ``description``.
public struct PostgreSQLLocation: Sendable, CustomStringConvertible {
    public enum TLSMode: String, Sendable {
        case disable, prefer, require
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    /// Parses a `postgresql://` (or `postgres://`) URL.
    public init(url: String) throws(DatabaseURLError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            ["postgresql", "postgres"].contains(scheme)
        else {
            throw DatabaseURLError(
                "'\(Self.redacted(url))' is not a PostgreSQL URL; expected postgresql://user:password@host:port/dbname"
            )
        }
        guard let host = components.host, !host.isEmpty else {
            throw DatabaseURLError("the database URL '\(Self.redacted(url))' names no host")
        }
        guard let user = components.user, !user.isEmpty else {
            throw DatabaseURLError("the database URL '\(Self.redacted(url))' names no user")
        }
        let name = String(components.path.drop { $0 == "/" })
        guard !name.isEmpty, !name.contains("/") else {
            throw DatabaseURLError("the database URL '\(Self.redacted(url))' names no database (…/dbname)")
        }
        var tls = TLSMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(TLSMode.init(rawValue:)) else {
                    throw DatabaseURLError(
                        "sslmode '\(item.value ?? "")' in the database URL is not one of disable, prefer, require, verify-full"
                    )
                }
                tls = mode
            default:
                throw DatabaseURLError(
                    "the database URL has an unknown parameter '\(item.name)'; only sslmode is known"
                )
            }
        }
        self.host = host
        self.port = components.port ?? 5432
        self.username = user.removingPercentEncoding ?? user
        self.password = components.password.map { $0.removingPercentEncoding ?? $0 }
        self.database = name.removingPercentEncoding ?? name
        self.tls = tls
    }

    /// Whether `url` names PostgreSQL rather than the embedded SQLite file.
    public static func isPostgreSQL(_ url: String) -> Bool {
        let lowered = url.lowercased()
        return lowered.hasPrefix("postgresql:") || lowered.hasPrefix("postgres:")
    }

    public var description: String {
        "postgresql://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
    }

    /// `url` with any password replaced, for messages.
    static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? "(a database URL)"
    }

    /// The connection settings postgres-nio takes.
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var unchecked = TLSConfiguration.makeClientConfiguration()
        unchecked.certificateVerification = .none
        let tls: PostgresConnection.Configuration.TLS
        switch self.tls {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(try NIOSSLContext(configuration: unchecked))
        case .require: tls = .require(try NIOSSLContext(configuration: unchecked))
        case .verifyFull: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(
            host: host,
            port: port,
            username: username,
            password: password,
            database: database,
            tls: tls
        )
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }
}

/// A database URL Herald cannot use.
public struct DatabaseURLError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String

    init(_ message: String) { self.message = message }

    public var description: String { message }
}
