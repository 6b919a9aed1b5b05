import Configuration
import HeraldHTTP
import HeraldScripting
import HeraldStorage
import Logging

/// Every setting of a Herald server, with its default.
///
/// Read from a `ConfigReader` whose keys are the property names below (`port`,
/// `superuser.password`, `maxBodySize`, ...): the executable layers command-line options over
/// `HERALD_*` environment variables over a JSON config file.
public struct HeraldConfiguration: Sendable {
    /// The folder with the type files and scripts.
    public var schemaDirectory = "./schema"
    /// Static files served at `/` (the example app's page); skipped when the folder is missing.
    public var publicDirectory = "./public"
    /// The folder holding the SQLite database (and, with either backend, the token key when
    /// none is configured).
    public var dataDirectory = "./data"
    /// The database: absent or `sqlite` for the SQLite file in the data folder, or
    /// `postgresql://user:password@host:port/dbname` for PostgreSQL. Secret: it may hold a password.
    public var database: String?
    /// The most connections one process opens to PostgreSQL.
    public var databaseConnections = 16
    /// How many times a write that conflicts with concurrent writes on PostgreSQL runs before it
    /// answers 503.
    public var databaseWriteAttempts = 10
    public var host = "127.0.0.1"
    /// The port to listen on; 0 picks a free one.
    public var port = 8082
    /// The listen backlog: many clients connecting at once need more than the usual 256.
    public var backlog = 4096
    /// The superuser's password; without one the superuser cannot authenticate.
    public var superuserPassword: String?
    /// Request bodies larger than this are refused with 413.
    public var maxBodySize = 4 * 1024 * 1024
    /// Apply schema changes that lose data (removed or retyped properties, removed types).
    public var allowDestructiveMigrations = false
    /// bcrypt cost for stored passwords (4...31).
    public var bcryptCost = 12
    public var logLevel: Logger.Level = .info
    /// JavaScript engines (threads) running hooks and methods; 0 means one per core.
    public var scriptEngines = 0
    /// How long one script may run before it is stopped, in milliseconds.
    public var scriptTimeLimit = 5000
    /// Requests waiting for an engine beyond this get 503.
    public var scriptQueueLimit = 1024
    /// A login session ends after this many seconds without a request.
    public var sessionIdleTimeout = 1800
    /// Failed logins in a row that lock an account (by name or e-mail, one lock per account).
    public var loginMaxFailures = 5
    /// How long a locked account stays locked, in seconds.
    public var loginLockout = 300
    /// Failed logins one client address may have per `loginClientWindow` seconds before it gets
    /// 429 (this, not a lockout, bounds guessing the superuser's password).
    public var loginClientMaxFailures = 30
    public var loginClientWindow = 60
    /// How long verified `X-User`/`X-Password` credentials are taken without bcrypt, in seconds
    /// (0: verify every request).
    public var credentialCacheLifetime = 60
    /// Memory one script engine's JavaScript heap may reach, in MiB; a script past it is stopped
    /// like one past its time limit, and its engine is replaced so the memory comes back.
    public var scriptMemoryLimit = 512
    /// Objects one batch POST may create; a larger batch is refused with 413.
    public var maxBatchSize = 1000
    /// Seconds a graceful shutdown may take before the process ends anyway.
    public var shutdownTimeout = 15
    /// Connections: seconds to receive a request head, to receive a body without progress, and
    /// an idle keep-alive connection stays open; the most connections served at once.
    public var headerTimeout = 10
    public var bodyTimeout = 30
    public var idleTimeout = 60
    public var maxConnections = 16_000
    /// The most bytes the database may grow to; a write past it is refused with 507 like a full
    /// disk (0: no limit but the disk).
    public var maxDatabaseSize = 0
    /// The password that opens the metrics endpoint with Basic authentication as `metrics`
    /// (admins always may); none by default.
    public var metricsToken: String?
    /// Mark session cookies `Secure`. Unset: when Herald serves TLS itself; set it when a proxy
    /// in front of Herald does.
    public var secureCookies: Bool?
    /// A PEM certificate chain and its key: serve HTTPS, with ALPN offering `h2` and `http/1.1`.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// Without TLS, also speak cleartext HTTP/2 with prior knowledge (h2c) next to HTTP/1.1, for
    /// a server behind a TLS-terminating proxy that talks HTTP/2 to it.
    public var http2Cleartext = false
    /// The most streams one HTTP/2 connection may have open at once (EventSources and requests
    /// alike); further streams are refused with `REFUSED_STREAM`.
    public var http2MaxConcurrentStreams = 100
    /// The EventSource endpoint: on or off (nothing else changes), its path, the `retry:` sent
    /// to clients (milliseconds) and the heartbeat interval (milliseconds).
    public var eventSourceEnabled = true
    public var eventSourcePath = "/structr/EventSource"
    public var eventSourceRetry = 3000
    public var eventSourceHeartbeat = 15000
    /// A stream write still pending after this many milliseconds closes the connection.
    public var eventSourceWriteTimeout = 30000
    /// The most an HTTP/1.x stream's socket holds unsent (bytes; 0: the kernel's own bound).
    public var eventSourceSocketUnsentBytes = 16 * 1024
    /// Events kept for replay after reconnects: at most this many, none older (seconds).
    public var eventHistoryCount = 10_000
    public var eventHistoryAge = 3600
    /// The newest events kept in memory for replay; older ones are read from the event log.
    public var eventWindowCount = 1000
    /// A stream that falls this far behind (events or bytes queued) is closed; it catches up by replay.
    public var eventQueueEvents = 1000
    public var eventQueueBytes = 1 << 20
    /// Under load, the milliseconds between two writes to a stream, each carrying everything
    /// published meanwhile (0: write every event as it comes).
    public var eventBatchInterval = 5
    /// Refuse `broadcastEvent`, `sendEvent` and `publish` with an event type that
    /// `schema/events.json` does not declare (undeclared types are allowed by default, as in Structr).
    public var requireDeclaredEvents = false
    /// Where Prometheus metrics are served; empty turns them off.
    public var metricsPath = "/structr/metrics"
    /// The key that signs tokens; generated and kept in the data folder when not set.
    public var jwtSecret: String?
    /// How long an access token is valid, in seconds.
    public var accessTokenLifetime = 900
    /// How long a refresh token is valid, in seconds.
    public var refreshTokenLifetime = 7 * 24 * 3600
    /// Origins (`https://app.example.com`) allowed to call Herald from a browser, with
    /// credentials; none by default.
    public var corsAllowedOrigins: [String] = []
    /// How often the schema folder is checked for edits, in milliseconds; 0 turns reloading off.
    public var schemaReloadInterval = 1000

    public init() {}

    /// Reads every setting from `reader`, keeping the default where it has none.
    public init(reader: ConfigReader) {
        let d = HeraldConfiguration()
        schemaDirectory = reader.string(forKey: "schema", default: d.schemaDirectory)
        dataDirectory = reader.string(forKey: "data", default: d.dataDirectory)
        database = reader.string(forKey: "database", isSecret: true)
        databaseConnections = reader.int(forKey: "databaseConnections", default: d.databaseConnections)
        databaseWriteAttempts = reader.int(forKey: "databaseWriteAttempts", default: d.databaseWriteAttempts)
        publicDirectory = reader.string(forKey: "public", default: d.publicDirectory)
        host = reader.string(forKey: "host", default: d.host)
        port = reader.int(forKey: "port", default: d.port)
        backlog = reader.int(forKey: "backlog", default: d.backlog)
        superuserPassword = reader.string(forKey: "superuser.password", isSecret: true)
        maxBodySize = reader.int(forKey: "maxBodySize", default: d.maxBodySize)
        allowDestructiveMigrations = reader.bool(forKey: "allowDestructiveMigrations", default: false)
        bcryptCost = reader.int(forKey: "bcryptCost", default: d.bcryptCost)
        logLevel = Logger.Level(rawValue: reader.string(forKey: "logLevel", default: "info")) ?? .info
        scriptEngines = reader.int(forKey: "scriptEngines", default: d.scriptEngines)
        scriptTimeLimit = reader.int(forKey: "scriptTimeLimit", default: d.scriptTimeLimit)
        scriptQueueLimit = reader.int(forKey: "scriptQueueLimit", default: d.scriptQueueLimit)
        sessionIdleTimeout = reader.int(forKey: "sessionIdleTimeout", default: d.sessionIdleTimeout)
        loginMaxFailures = reader.int(forKey: "loginMaxFailures", default: d.loginMaxFailures)
        loginLockout = reader.int(forKey: "loginLockout", default: d.loginLockout)
        loginClientMaxFailures = reader.int(forKey: "loginClientMaxFailures", default: d.loginClientMaxFailures)
        loginClientWindow = reader.int(forKey: "loginClientWindow", default: d.loginClientWindow)
        credentialCacheLifetime = reader.int(forKey: "credentialCacheLifetime", default: d.credentialCacheLifetime)
        scriptMemoryLimit = reader.int(forKey: "scriptMemoryLimit", default: d.scriptMemoryLimit)
        maxBatchSize = reader.int(forKey: "maxBatchSize", default: d.maxBatchSize)
        shutdownTimeout = reader.int(forKey: "shutdownTimeout", default: d.shutdownTimeout)
        headerTimeout = reader.int(forKey: "headerTimeout", default: d.headerTimeout)
        bodyTimeout = reader.int(forKey: "bodyTimeout", default: d.bodyTimeout)
        idleTimeout = reader.int(forKey: "idleTimeout", default: d.idleTimeout)
        maxConnections = reader.int(forKey: "maxConnections", default: d.maxConnections)
        metricsToken = reader.string(forKey: "metrics.token", isSecret: true)
        maxDatabaseSize = reader.int(forKey: "maxDatabaseSize", default: d.maxDatabaseSize)
        secureCookies = reader.bool(forKey: "secureCookies")
        tlsCertificate = reader.string(forKey: "tls.cert")
        tlsKey = reader.string(forKey: "tls.key")
        http2Cleartext = reader.bool(forKey: "http2.cleartext", default: d.http2Cleartext)
        http2MaxConcurrentStreams = reader.int(
            forKey: "http2.maxConcurrentStreams",
            default: d.http2MaxConcurrentStreams
        )
        eventSourceEnabled = reader.bool(forKey: "eventSource.enabled", default: d.eventSourceEnabled)
        eventSourcePath = reader.string(forKey: "eventSource.path", default: d.eventSourcePath)
        eventSourceRetry = reader.int(forKey: "eventSource.retry", default: d.eventSourceRetry)
        eventSourceHeartbeat = reader.int(forKey: "eventSource.heartbeat", default: d.eventSourceHeartbeat)
        eventSourceWriteTimeout = reader.int(forKey: "eventSource.writeTimeout", default: d.eventSourceWriteTimeout)
        eventSourceSocketUnsentBytes = reader.int(
            forKey: "eventSource.socketUnsentBytes",
            default: d.eventSourceSocketUnsentBytes
        )
        eventHistoryCount = reader.int(forKey: "eventSource.historyCount", default: d.eventHistoryCount)
        eventHistoryAge = reader.int(forKey: "eventSource.historyAge", default: d.eventHistoryAge)
        eventWindowCount = reader.int(forKey: "eventSource.windowCount", default: d.eventWindowCount)
        eventQueueEvents = reader.int(forKey: "eventSource.queueEvents", default: d.eventQueueEvents)
        eventQueueBytes = reader.int(forKey: "eventSource.queueBytes", default: d.eventQueueBytes)
        eventBatchInterval = reader.int(forKey: "eventSource.batchInterval", default: d.eventBatchInterval)
        requireDeclaredEvents = reader.bool(forKey: "events.requireDeclared", default: d.requireDeclaredEvents)
        metricsPath = reader.string(forKey: "metrics.path", default: d.metricsPath)
        jwtSecret = reader.string(forKey: "jwt.secret", isSecret: true)
        accessTokenLifetime = reader.int(forKey: "accessTokenLifetime", default: d.accessTokenLifetime)
        refreshTokenLifetime = reader.int(forKey: "refreshTokenLifetime", default: d.refreshTokenLifetime)
        corsAllowedOrigins = reader.stringArray(forKey: "cors.allowedOrigins", default: d.corsAllowedOrigins)
        schemaReloadInterval = reader.int(forKey: "schemaReloadInterval", default: d.schemaReloadInterval)
    }

    /// The script engines' limits.
    var engines: EnginePool.Configuration {
        var c = EnginePool.Configuration()
        if scriptEngines > 0 { c.size = scriptEngines }
        c.maxQueued = scriptQueueLimit
        c.timeLimit = .milliseconds(scriptTimeLimit)
        c.memoryLimit = scriptMemoryLimit << 20
        return c
    }

    /// Whether session and token cookies are marked `Secure`.
    var cookiesAreSecure: Bool { secureCookies ?? (tlsCertificate != nil) }

    /// How the server speaks HTTP.
    var transport: HTTPTransport.Configuration {
        var c = HTTPTransport.Configuration()
        c.idleTimeout = .seconds(idleTimeout)
        c.headerTimeout = .seconds(headerTimeout)
        c.bodyTimeout = .seconds(bodyTimeout)
        if let tlsCertificate, let tlsKey { c.tls = TLSFiles(certificate: tlsCertificate, key: tlsKey) }
        c.cleartextHTTP2 = http2Cleartext
        c.maxConcurrentStreams = http2MaxConcurrentStreams
        c.loopPaths = [eventSourcePath, AdminController.eventsPath]
        return c
    }

    /// The password check's limits.
    var credentials: UserCredentials.Configuration {
        var c = UserCredentials.Configuration()
        c.maxFailures = loginMaxFailures
        c.lockout = .seconds(loginLockout)
        c.clientMaxFailures = loginClientMaxFailures
        c.clientWindow = .seconds(loginClientWindow)
        c.cacheLifetime = .seconds(credentialCacheLifetime)
        return c
    }

    /// Where the data lives.
    enum Backend {
        case sqlite
        case postgresql(PostgreSQLLocation)
    }

    /// The backend `database` names.
    func backend() throws(ConfigurationError) -> Backend {
        guard let database, !database.isEmpty, database.lowercased() != "sqlite" else { return .sqlite }
        guard PostgreSQLLocation.isPostgreSQL(database) else {
            throw ConfigurationError(
                "database must be sqlite or a postgresql://user:password@host:port/dbname URL, not '\(database.prefix { $0 != ":" })…'"
            )
        }
        do {
            return .postgresql(try PostgreSQLLocation(url: database))
        } catch {
            throw ConfigurationError("database: \(error)")
        }
    }

    /// Problems that make the settings unusable.
    public func validate() throws(ConfigurationError) {
        _ = try backend()
        guard databaseConnections > 0, databaseWriteAttempts > 0 else {
            throw ConfigurationError("databaseConnections and databaseWriteAttempts must be positive")
        }
        guard (0...65535).contains(port) else { throw ConfigurationError("port must be in 0...65535, got \(port)") }
        guard (4...31).contains(bcryptCost) else {
            throw ConfigurationError("bcryptCost must be in 4...31, got \(bcryptCost)")
        }
        guard maxBodySize > 0 else { throw ConfigurationError("maxBodySize must be positive") }
        guard backlog > 0 else { throw ConfigurationError("backlog must be positive") }
        guard scriptEngines >= 0 else { throw ConfigurationError("scriptEngines must be 0 (one per core) or more") }
        guard scriptTimeLimit > 0 else { throw ConfigurationError("scriptTimeLimit must be positive (milliseconds)") }
        guard eventSourcePath.hasPrefix("/"), !eventSourcePath.hasPrefix("/structr/rest") else {
            throw ConfigurationError("eventSource.path must start with / and lie outside /structr/rest")
        }
        guard eventSourceRetry >= 0, eventSourceHeartbeat > 0, eventSourceWriteTimeout > 0 else {
            throw ConfigurationError(
                "eventSource.retry must not be negative and eventSource.heartbeat must be positive"
            )
        }
        guard eventSourceSocketUnsentBytes >= 0 else {
            throw ConfigurationError("eventSource.socketUnsentBytes must not be negative (0: the kernel's own bound)")
        }
        guard eventHistoryCount >= 0, eventHistoryAge >= 0, eventWindowCount >= 0, eventQueueEvents > 0,
            eventQueueBytes > 0,
            eventBatchInterval >= 0
        else {
            throw ConfigurationError(
                "event history limits and eventSource.batchInterval must not be negative, queue limits must be positive"
            )
        }
        guard accessTokenLifetime > 0, refreshTokenLifetime > 0 else {
            throw ConfigurationError("accessTokenLifetime and refreshTokenLifetime must be positive (seconds)")
        }
        guard sessionIdleTimeout > 0 else { throw ConfigurationError("sessionIdleTimeout must be positive (seconds)") }
        guard loginMaxFailures > 0 else { throw ConfigurationError("loginMaxFailures must be positive") }
        guard loginLockout >= 0 else { throw ConfigurationError("loginLockout must not be negative (seconds)") }
        guard loginClientMaxFailures > 0, loginClientWindow > 0, credentialCacheLifetime >= 0 else {
            throw ConfigurationError(
                "loginClientMaxFailures and loginClientWindow must be positive, credentialCacheLifetime not negative"
            )
        }
        guard scriptMemoryLimit >= 16 else { throw ConfigurationError("scriptMemoryLimit must be at least 16 (MiB)") }
        guard maxBatchSize > 0 else { throw ConfigurationError("maxBatchSize must be positive") }
        guard shutdownTimeout > 0 else { throw ConfigurationError("shutdownTimeout must be positive (seconds)") }
        guard headerTimeout > 0, bodyTimeout > 0, idleTimeout > 0 else {
            throw ConfigurationError("headerTimeout, bodyTimeout and idleTimeout must be positive (seconds)")
        }
        guard maxConnections > 0 else { throw ConfigurationError("maxConnections must be positive") }
        guard maxDatabaseSize >= 0 else { throw ConfigurationError("maxDatabaseSize must not be negative (bytes)") }
        guard schemaReloadInterval >= 0 else { throw ConfigurationError("schemaReloadInterval must not be negative") }
        guard scriptQueueLimit >= 0 else { throw ConfigurationError("scriptQueueLimit must not be negative") }
        guard (tlsCertificate == nil) == (tlsKey == nil) else {
            throw ConfigurationError(
                "TLS needs both a certificate (--tls-cert, tls.cert) and its key (--tls-key, tls.key)"
            )
        }
        guard !(http2Cleartext && tlsCertificate != nil) else {
            throw ConfigurationError(
                "http2.cleartext is for serving without TLS; with a certificate, ALPN offers HTTP/2 already"
            )
        }
        guard http2MaxConcurrentStreams > 0 else {
            throw ConfigurationError("http2.maxConcurrentStreams must be positive")
        }
    }
}

/// A setting that cannot be used.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
