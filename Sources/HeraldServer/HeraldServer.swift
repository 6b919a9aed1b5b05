import Foundation
import HeraldApplication
import HeraldEvents
import HeraldHTTP
import HeraldSchema
import HeraldScripting
import HeraldStorage
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import UnixSignals

/// Builds a running Herald: loads the schema, opens and migrates storage, loads initial data
/// and wires the HTTP routes. The result is a service to run: storage, the event feeds, the
/// scheduler and the listener.
public enum HeraldServer {
    /// Starts the server and runs until SIGTERM or SIGINT, then shuts down gracefully:
    /// in-flight requests finish, then storage closes.
    ///
    /// Whatever scripts or storage are doing, the process ends at most `shutdownTimeout`
    /// seconds after the first SIGTERM or SIGINT.
    public static func run(configuration: HeraldConfiguration, logger: Logger) async throws {
        let app = try await makeApplication(configuration: configuration, logger: logger)
        let deadline = ShutdownDeadline(after: .seconds(configuration.shutdownTimeout), logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
        deadline.cancel()
    }

    /// Prepares everything and returns the application; nothing listens until it runs.
    ///
    /// - Parameter onServerRunning: called with the bound port once the server listens.
    public static func makeApplication(
        configuration: HeraldConfiguration,
        logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws -> some Service {
        try configuration.validate()
        // Certificate problems stop start-up before anything else is opened.
        let transport = try HTTPTransport(configuration: configuration.transport)
        let schemaURL = URL(fileURLWithPath: configuration.schemaDirectory)
        let schema = try SchemaLoader(directory: schemaURL).load()
        logger.info(
            "schema loaded",
            metadata: [
                "folder": "\(schemaURL.path)", "types": "\(schema.types.count)",
                "methods": "\(schema.types.values.reduce(0) { $0 + $1.methods.count } + schema.globalMethods.count)",
            ]
        )
        let storage = try openStorage(configuration, logger: logger)
        let migration: MigrationReport
        do {
            migration = try await storage.migrate(
                to: schema,
                allowDestructive: configuration.allowDestructiveMigrations
            )
        } catch {
            try? storage.close()
            throw error
        }
        let hasher = BcryptPasswordHasher(cost: UInt8(configuration.bcryptCost))
        let model = DataModel(schema: schema, hasher: hasher)
        let loaded: Int
        do {
            loaded = try await loadInitialData(model, into: storage)
        } catch {
            try? storage.close()
            throw error
        }
        if loaded > 0 { logger.info("initial data loaded", metadata: ["objects": "\(loaded)"]) }
        if configuration.superuserPassword?.isEmpty ?? true {
            logger.warning(
                "no superuser password set (HERALD_SUPERUSER_PASSWORD or superuser.password): the superuser cannot authenticate"
            )
        }

        let pool = EnginePool(
            configuration: configuration.engines,
            logger: Logger(label: "herald.scripting", level: configuration.logLevel)
        )
        var limits = EventHub.Limits()
        limits.historyCount = configuration.eventHistoryCount
        limits.historyAge = .seconds(configuration.eventHistoryAge)
        limits.queueEvents = configuration.eventQueueEvents
        limits.queueBytes = configuration.eventQueueBytes
        limits.batchInterval = .milliseconds(configuration.eventBatchInterval)
        limits.windowCount = configuration.eventWindowCount
        let metrics = PrometheusCollectorRegistry()
        let hub = EventHub(limits: limits, metrics: PrometheusMetricsFactory(registry: metrics))
        let log = EventLog(storage: storage, limits: limits)
        try await log.restore(into: hub)
        let workRunner = WorkRunner(
            model: model,
            generation: migration.generation,
            storage: storage,
            events: hub,
            hooks: pool,
            requireDeclaredEvents: configuration.requireDeclaredEvents,
            logger: Logger(label: "herald.application", level: configuration.logLevel)
        )
        let methods = MethodRunner(workRunner: workRunner, pool: pool)
        let policy = ResourceAccessPolicy(storage: storage)
        // An ended stream can resume for as long as the log keeps its changes.
        var liveLimits = LiveQueries.Limits()
        liveLimits.retention = limits.historyAge
        let live = LiveQueries(
            workRunner: workRunner,
            limits: liveLimits,
            logger: Logger(label: "herald.live", level: configuration.logLevel),
            grants: LiveQueries.GrantCheck(refresh: { policy.invalidate() }) { caller, type in
                (try? await policy.authorize(caller, RESTOperation(method: .get, signature: type))) != nil
            }
        )
        try await live.restore()

        let router = Router(context: HeraldRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: BrowserProtectionMiddleware(allowedOrigins: configuration.corsAllowedOrigins))
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: configuration.publicDirectory, isDirectory: &isDirectory),
            isDirectory.boolValue
        {
            router.add(
                middleware: FileMiddleware(
                    fileProvider: ContainedFileSystem(rootFolder: configuration.publicDirectory, logger: logger),
                    searchForIndexHtml: true
                )
            )
        }
        let credentials = UserCredentials(
            storage: storage,
            hasher: hasher,
            superuserPassword: configuration.superuserPassword.flatMap { $0.isEmpty ? nil : $0 },
            configuration: configuration.credentials,
            metrics: PrometheusMetricsFactory(registry: metrics)
        )
        let sessions = Sessions(
            storage: storage,
            idleTimeout: .seconds(configuration.sessionIdleTimeout),
            secureCookies: configuration.cookiesAreSecure,
            onEnd: { key in
                hub.close(origin: key)
                live.close(origin: key)
            }
        )
        let tokens = await Tokens.make(
            secret: try await tokenSecret(configuration, storage: storage),
            storage: storage,
            accessLifetime: .seconds(configuration.accessTokenLifetime),
            refreshLifetime: .seconds(configuration.refreshTokenLifetime),
            secureCookies: configuration.cookiesAreSecure
        )
        let expired = Timestamp(
            millisecondsSince1970: Timestamp.now.millisecondsSince1970 - Int64(configuration.sessionIdleTimeout) * 1000
        )
        _ = try await storage.write { tx in try tx.deleteSessions(idleSince: expired) }
        router.add(
            middleware: IdentityMiddleware(
                authenticator: AuthenticatorChain([
                    SessionAuthenticator(sessions: sessions),
                    TokenAuthenticator(tokens: tokens),
                    HeaderAuthenticator(credentials: credentials),
                ])
            )
        )
        workRunner.onCommit { types in
            if types.contains(BuiltInType.resourceAccess) { policy.invalidate() }
            if types.contains(BuiltInType.user) { sessions.forgetCallers() }
        }
        var eventSource = EventSourceSettings()
        eventSource.enabled = configuration.eventSourceEnabled
        eventSource.path = configuration.eventSourcePath
        eventSource.retry = configuration.eventSourceRetry
        eventSource.heartbeat = .milliseconds(configuration.eventSourceHeartbeat)
        eventSource.writeTimeout = .milliseconds(configuration.eventSourceWriteTimeout)
        eventSource.socketUnsentBytes = configuration.eventSourceSocketUnsentBytes
        let eventSourceController = EventSourceController(
            hub: hub,
            log: log,
            policy: policy,
            channels: ChannelAccess(
                methods: methods,
                logger: Logger(label: "herald.channels", level: configuration.logLevel)
            ),
            settings: eventSource
        )
        let liveController = LiveQueryController(live: live, eventSource: eventSourceController)
        RESTController(
            methods: methods,
            policy: policy,
            sessions: sessions,
            tokens: tokens,
            credentials: credentials,
            maxBodySize: configuration.maxBodySize,
            maxBatchSize: configuration.maxBatchSize,
            live: liveController
        )
        .register(on: router)
        liveController.register(on: router)
        AdminController(monitor: EventMonitor(hub: hub), eventSource: eventSourceController).register(on: router)
        eventSourceController.register(on: router)
        DocumentsController(workRunner: workRunner, policy: policy, eventSourcePath: eventSource.path)
            .register(on: router)
        if !configuration.metricsPath.isEmpty {
            MetricsController(registry: metrics, path: configuration.metricsPath, token: configuration.metricsToken)
                .register(on: router)
        }

        var services: [any Service] = [
            StorageService(storage: storage, pool: pool, hub: hub, log: log, logger: logger), live,
        ]
        if let shared = storage as? any SharedStorageBackend {
            services.append(
                CommitFeed(
                    storage: shared,
                    workRunner: workRunner,
                    sessions: sessions,
                    logger: Logger(label: "herald.cluster", level: configuration.logLevel)
                )
            )
            services.append(
                PresenceService(
                    presence: Presence(
                        workRunner: workRunner,
                        logger: Logger(label: "herald.cluster", level: configuration.logLevel)
                    )
                )
            )
        }
        if configuration.schemaReloadInterval > 0 {
            services.append(
                SchemaReloader(
                    directory: schemaURL,
                    interval: .milliseconds(configuration.schemaReloadInterval),
                    methods: methods,
                    storage: storage,
                    hasher: hasher,
                    allowDestructive: configuration.allowDestructiveMigrations,
                    logger: logger
                )
            )
        }
        services.append(
            SchedulerService(
                scheduler: Scheduler(
                    methods: methods,
                    logger: Logger(label: "herald.scheduler", level: configuration.logLevel)
                )
            )
        )

        var listening = HTTPListener.Configuration()
        listening.host = configuration.host
        listening.port = configuration.port
        listening.backlog = configuration.backlog
        listening.maxConnections = ConnectionLimit.effective(configured: configuration.maxConnections, logger: logger)
        let listener = try transport.listener(
            application: router.buildResponder(),
            configuration: listening,
            metrics: PrometheusMetricsFactory(registry: metrics),
            logger: logger
        ) { channel in
            let port = channel.localAddress?.port ?? configuration.port
            logger.info(
                "Herald listening",
                metadata: [
                    "host": "\(configuration.host)", "port": "\(port)", "protocols": "\(transport.protocols)",
                ]
            )
            await onServerRunning(port)
        }
        // Shut down in reverse: the listener first, storage last.
        return ServiceGroup(configuration: .init(services: services + [listener], logger: logger))
    }
}

/// Keeps the engines and storage open while the server runs, pruning the event log every
/// second in bounded batches; after the HTTP server has drained, closes the streams, lets the
/// engines finish their queued jobs, then closes storage (checkpointing the WAL).
struct StorageService: Service {
    let storage: any StorageBackend
    let pool: EnginePool
    let hub: EventHub
    let log: EventLog
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                do {
                    while try await log.prune(hub), !Task.isCancelled {}
                } catch is CancellationError {
                    break
                } catch {
                    logger.error("pruning the event log failed: \(error)")
                }
            }
        }
        hub.closeAll()
        await pool.shutdown()
        try storage.close()
        logger.info("storage closed")
    }
}

extension Logger {
    init(label: String, level: Logger.Level) {
        self.init(label: label)
        self.logLevel = level
    }
}
