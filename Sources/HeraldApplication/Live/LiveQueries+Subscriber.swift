import HeraldEvents
import HeraldSchema
import HeraldStorage
import NIOCore

extension LiveQueries {
    /// One live stream: its query, its caller, what it has and how far in the log it is. Its
    /// state is touched only by the live-query task; its sink only on the sink's loop.
    final class Subscriber: @unchecked Sendable {
        let id: Int
        let query: Query
        let caller: Caller
        let origin: String?
        let sink: any StreamSink
        /// The ids of the objects the stream holds.
        var known: Set<String> = []
        /// The log position of its snapshot: changes at or below it are in the snapshot.
        var position: UInt64 = 0

        init(id: Int, query: Query, caller: Caller, origin: String?, sink: any StreamSink) {
            self.id = id
            self.query = query
            self.caller = caller
            self.origin = origin
            self.sink = sink
        }

        /// Opens the stream and writes its first event.
        func open(with first: ServerEvent) {
            let sink = self.sink
            let encoded = EncodedEvents([first], bytes: ByteBuffer(string: first.wireFormat))
            sink.eventLoop.execute {
                sink.open(resync: false)
                _ = sink.write(encoded, flush: true)
            }
        }

        /// Writes `events`; false once the sink has given up on a reader that fell behind (it
        /// closes its connection itself).
        func write(_ events: [ServerEvent]) -> Bool {
            var bytes = ByteBuffer()
            for event in events { bytes.writeString(event.wireFormat) }
            let encoded = EncodedEvents(events, bytes: bytes)
            let sink = self.sink
            sink.eventLoop.execute { _ = sink.write(encoded, flush: true) }
            return true
        }

        func end() {
            let sink = self.sink
            sink.eventLoop.execute { sink.end() }
        }

        /// The events a batch means for this stream, in log order, and what it holds after.
        func follow(
            _ evaluation: Evaluation,
            order: [String],
            touched: [String: Touched],
            rightsChanged: UInt64?
        ) -> [ServerEvent] {
            var events: [ServerEvent] = []
            for id in order {
                guard let change = touched[id], change.logID > position else { continue }
                if let rendering = evaluation.rendered[id] {
                    if known.insert(id).inserted {
                        events.append(ServerEvent(id: change.logID, type: "enter", data: rendering.jsonString))
                    } else {
                        let changed = change.keys.subtracting([ObjectChange.grantsKey]).sorted()
                        let data: JSONValue = ["object": rendering, "changed": .array(changed.map(JSONValue.string))]
                        events.append(ServerEvent(id: change.logID, type: "update", data: data.jsonString))
                    }
                } else if known.remove(id) != nil {
                    events.append(ServerEvent(id: change.logID, type: "leave", data: Self.leave(id)))
                }
            }
            if let rightsChanged, rightsChanged > position, let all = evaluation.all {
                let now = Set(all)
                for id in all where known.insert(id).inserted {
                    guard let rendering = evaluation.rendered[id] else { continue }
                    events.append(ServerEvent(id: rightsChanged, type: "enter", data: rendering.jsonString))
                }
                for id in known.subtracting(now).sorted() {
                    known.remove(id)
                    events.append(ServerEvent(id: rightsChanged, type: "leave", data: Self.leave(id)))
                }
            }
            return events.sorted { $0.id < $1.id }
        }

        static func leave(_ id: String) -> String {
            JSONValue.object(["id": .string(id)]).jsonString
        }
    }
}
