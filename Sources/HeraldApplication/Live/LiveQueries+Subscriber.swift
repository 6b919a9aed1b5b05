import HeraldEvents
import HeraldSchema
import HeraldStorage
import NIOCore
import NIOPosix

extension LiveQueries {
    /// One live stream: its query, its caller, what it holds and how far in the log it is. Its
    /// state is touched only by the live-query task; its sink only on the sink's loop.
    final class Subscriber: @unchecked Sendable {
        let id: Int
        let query: Query
        let caller: Caller
        let key: GroupKey
        let origin: String?
        let sink: any StreamSink
        let journalLength: Int
        /// The ids of the objects the stream holds.
        private(set) var known: Set<String> = []
        /// The log position it is at: changes at or below it are already in what it holds.
        var position: UInt64 = 0
        /// The position it started from (its snapshot's, or the id it resumed after).
        private var start: UInt64 = 0
        /// Its enters and leaves since `start`, oldest first, at most `journalLength`.
        private var journal: [(logID: UInt64, object: String, entered: Bool)] = []
        /// The newest log id of a step the journal let go: it cannot go back before it.
        private var forgotten: UInt64 = 0
        /// When its client went away.
        var endedAt: ContinuousClock.Instant?

        init(id: Int, query: Query, caller: Caller, origin: String?, sink: any StreamSink, journalLength: Int) {
            self.id = id
            self.query = query
            self.caller = caller
            self.key = GroupKey(query, caller)
            self.origin = origin
            self.sink = sink
            self.journalLength = journalLength
        }

        /// The state a reconnect needs, as kept across a restart.
        var stored: JSONValue {
            [
                "signature": .string(query.signature), "caller": Self.stored(caller),
                "known": .array(known.sorted().map(JSONValue.string)), "start": .int(Int64(start)),
                "position": .int(Int64(position)), "forgotten": .int(Int64(forgotten)),
                "journal": .array(
                    journal.map { .array([.int(Int64($0.logID)), .string($0.object), .bool($0.entered)]) }
                ),
            ]
        }

        /// A stream that ended before a restart, read back: it has no sink and only resumes.
        convenience init?(restoring stored: JSONValue, journalLength: Int) {
            guard let signature = stored["signature"]?.stringValue, let caller = Self.caller(stored["caller"]),
                let start = stored["start"]?.intValue, let position = stored["position"]?.intValue
            else { return nil }
            let query = Query(query: EntityQuery(type: ""), nesting: .default, view: nil, signature: signature)
            self.init(id: -1, query: query, caller: caller, origin: nil, sink: KeptSink(), journalLength: journalLength)
            self.known = Set(stored["known"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            self.start = UInt64(max(0, start))
            self.position = UInt64(max(0, position))
            self.forgotten = UInt64(max(0, stored["forgotten"]?.intValue ?? 0))
            self.journal = (stored["journal"]?.arrayValue ?? []).compactMap { step in
                guard let parts = step.arrayValue, parts.count == 3, let logID = parts[0].intValue,
                    let object = parts[1].stringValue, case .bool(let entered) = parts[2]
                else { return nil }
                return (UInt64(max(0, logID)), object, entered)
            }
            self.endedAt = .now
        }

        static func stored(_ caller: Caller) -> JSONValue {
            switch caller {
            case .anonymous: ["kind": "anonymous"]
            case .superuser: ["kind": "superuser"]
            case .user(let id, let name, let isAdmin):
                [
                    "kind": "user", "id": .string(id), "name": name.map(JSONValue.string) ?? .null,
                    "isAdmin": .bool(isAdmin),
                ]
            }
        }

        static func caller(_ stored: JSONValue?) -> Caller? {
            switch stored?["kind"]?.stringValue {
            case "anonymous": return .anonymous
            case "superuser": return .superuser
            case "user":
                guard let id = stored?["id"]?.stringValue else { return nil }
                return .user(id: id, name: stored?["name"]?.stringValue, isAdmin: stored?["isAdmin"] == .bool(true))
            default: return nil
            }
        }

        /// Starts from `known` at `position`.
        func reset(known: Set<String>, position: UInt64) {
            self.known = known
            self.position = position
            self.start = position
            journal = []
            forgotten = 0
        }

        /// Whether `logID` lies within what the stream went through.
        func reached(_ logID: UInt64) -> Bool { logID >= start && logID <= position }

        /// What the stream held right after the event `logID`, if its journal reaches back
        /// that far.
        func held(at logID: UInt64) -> Set<String>? {
            guard reached(logID), logID >= forgotten else { return nil }
            var held = known
            for step in journal.reversed() where step.logID > logID {
                if step.entered { held.remove(step.object) } else { held.insert(step.object) }
            }
            return held
        }

        /// Opens the stream and writes its first events.
        func open(with first: [ServerEvent]) {
            let sink = self.sink
            let encoded = Self.encode(first)
            sink.eventLoop.execute {
                sink.open(resync: false)
                if !first.isEmpty { _ = sink.write(encoded, flush: true) }
            }
        }

        static func encode(_ events: [ServerEvent]) -> EncodedEvents {
            var bytes = ByteBuffer()
            for event in events { bytes.writeString(event.wireFormat) }
            return EncodedEvents(events, bytes: bytes)
        }

        func end() {
            let sink = self.sink
            sink.eventLoop.execute { sink.end() }
        }

        /// What a batch without a rights move means for a stream, which depends only on which
        /// changed objects it holds (``signature(of:)``): shared by every stream with the same
        /// signature, so the events are built and encoded once.
        struct Outcome {
            var events: [ServerEvent] = []
            var encoded: EncodedEvents?
            var entered: [(logID: UInt64, object: String)] = []
            var left: [(logID: UInt64, object: String)] = []
        }

        /// For each changed object of `batch`, in order: 0 when the stream is past its change
        /// already, 2 when it holds the object, 1 when not.
        func signature(of batch: ChangeBatch) -> [UInt8] {
            batch.order.map { id in
                guard let change = batch.touched[id], change.logID > position else { return 0 }
                return known.contains(id) ? 2 : 1
            }
        }

        /// The outcome of `batch` for streams with `signature` (the batch moved no rights).
        static func outcome(_ evaluation: Evaluation, _ batch: ChangeBatch, signature: [UInt8]) -> Outcome {
            var outcome = Outcome()
            var events: [ServerEvent] = []
            for (index, id) in batch.order.enumerated() where signature[index] != 0 {
                guard let change = batch.touched[id] else { continue }
                if let rendering = evaluation.rendered[id] {
                    if signature[index] == 1 {
                        events.append(ServerEvent(id: change.logID, type: "enter", data: rendering))
                        outcome.entered.append((change.logID, id))
                    } else {
                        events.append(
                            ServerEvent(id: change.logID, type: "update", data: update(rendering, change.keys))
                        )
                    }
                } else if signature[index] == 2 {
                    events.append(ServerEvent(id: change.logID, type: "leave", data: leave(id)))
                    outcome.left.append((change.logID, id))
                }
            }
            events.sort { $0.id < $1.id }
            outcome.events = events
            outcome.encoded = events.isEmpty ? nil : encode(events)
            return outcome
        }

        /// Takes an outcome of `batch`: what the stream holds and how far it is.
        func take(_ outcome: Outcome, of batch: ChangeBatch) {
            for (logID, id) in outcome.entered {
                known.insert(id)
                note(logID, id, entered: true)
            }
            for (logID, id) in outcome.left {
                known.remove(id)
                note(logID, id, entered: false)
            }
            position = max(position, batch.newest)
        }

        static func update(_ rendering: String, _ keys: Set<String>) -> String {
            let changed = JSONValue.array(keys.subtracting([ObjectChange.grantsKey]).sorted().map(JSONValue.string))
            return #"{"object":"# + rendering + #","changed":"# + changed.jsonString + "}"
        }

        /// The events a batch means for this stream, in log order; updates what it holds. A
        /// rights move also compares everything that matches now with what it holds.
        func follow(_ evaluation: Evaluation, _ batch: ChangeBatch) -> [ServerEvent] {
            let before = position
            let changed = Self.outcome(evaluation, batch, signature: signature(of: batch))
            take(changed, of: batch)
            var events = changed.events
            if let moved = batch.rightsChanged, moved > before, let all = evaluation.all {
                for id in all where !known.contains(id) {
                    guard let rendering = evaluation.rendered[id] else { continue }
                    known.insert(id)
                    events.append(ServerEvent(id: moved, type: "enter", data: rendering))
                    note(moved, id, entered: true)
                }
                for id in known.subtracting(all).sorted() {
                    known.remove(id)
                    events.append(ServerEvent(id: moved, type: "leave", data: Self.leave(id)))
                    note(moved, id, entered: false)
                }
            }
            return events.sorted { $0.id < $1.id }
        }

        private func note(_ logID: UInt64, _ object: String, entered: Bool) {
            journal.append((logID, object, entered))
            if journal.count > journalLength {
                let extra = journal.count - journalLength
                forgotten = max(forgotten, journal[..<extra].map(\.logID).max() ?? 0)
                journal.removeFirst(extra)
            }
        }

        static func leave(_ id: String) -> String {
            JSONValue.object(["id": .string(id)]).jsonString
        }
    }

    /// The sink of a stream read back after a restart: it never writes (the stream only
    /// resumes into a new one).
    final class KeptSink: StreamSink {
        let eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()
        func open(resync: Bool) {}
        func write(_ events: EncodedEvents, flush: Bool) -> Bool { false }
        func end() {}
    }
}
