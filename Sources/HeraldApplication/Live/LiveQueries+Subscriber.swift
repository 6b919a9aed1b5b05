import HeraldEvents
import HeraldSchema
import HeraldStorage
import NIOCore

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

        /// Starts from `known` at `position`.
        func reset(known: Set<String>, position: UInt64) {
            self.known = known
            self.position = position
            self.start = position
            journal = []
        }

        /// Whether `logID` lies within what the stream went through.
        func reached(_ logID: UInt64) -> Bool { logID >= start && logID <= position }

        /// What the stream held right after the event `logID`, if its journal reaches back
        /// that far.
        func held(at logID: UInt64) -> Set<String>? {
            guard reached(logID) else { return nil }
            if journal.count >= journalLength, let oldest = journal.first, oldest.logID <= logID { return nil }
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

        /// The events a batch means for this stream, in log order; updates what it holds.
        func follow(_ evaluation: Evaluation, _ batch: ChangeBatch) -> [ServerEvent] {
            var events: [ServerEvent] = []
            for id in batch.order {
                guard let change = batch.touched[id], change.logID > position else { continue }
                if let rendering = evaluation.rendered[id] {
                    if known.insert(id).inserted {
                        events.append(ServerEvent(id: change.logID, type: "enter", data: rendering))
                        note(change.logID, id, entered: true)
                    } else {
                        let changed = JSONValue.array(
                            change.keys.subtracting([ObjectChange.grantsKey]).sorted().map(JSONValue.string)
                        )
                        let data = #"{"object":"# + rendering + #","changed":"# + changed.jsonString + "}"
                        events.append(ServerEvent(id: change.logID, type: "update", data: data))
                    }
                } else if known.remove(id) != nil {
                    events.append(ServerEvent(id: change.logID, type: "leave", data: Self.leave(id)))
                    note(change.logID, id, entered: false)
                }
            }
            if let moved = batch.rightsChanged, moved > position, let all = evaluation.all {
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
            if let newest = events.map(\.id).max() { position = max(position, newest) }
            position = max(position, batch.touched.values.map(\.logID).max() ?? position)
            return events.sorted { $0.id < $1.id }
        }

        private func note(_ logID: UInt64, _ object: String, entered: Bool) {
            journal.append((logID, object, entered))
            if journal.count > journalLength { journal.removeFirst(journal.count - journalLength) }
        }

        static func leave(_ id: String) -> String {
            JSONValue.object(["id": .string(id)]).jsonString
        }
    }
}
