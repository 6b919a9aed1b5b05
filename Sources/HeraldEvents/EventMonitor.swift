import HeraldSchema
import HeraldStorage
import NIOCore
import Synchronization

/// Every event the hub delivers, whoever it is for, to the admin console's monitor streams.
///
/// Each event goes out as an `event: published` whose data is `{"id", "type", "audience",
/// "data", "created"}`: the audience after group expansion, as the log holds it. The feed is
/// encoded once per delivery and written on each sink's loop; a monitor that falls behind is
/// dropped like any stream (the sink bounds it), and graceful shutdown ends every monitor stream
/// through its sink, like the EventSource's.
public final class EventMonitor: Sendable {
    private let sinks = Mutex<(next: Int, members: [Int: any StreamSink])>((0, [:]))

    /// Follows what `hub` delivers from now on.
    public init(hub: EventHub) {
        hub.onPublished { [weak self] entries in self?.publish(entries) }
    }

    /// Adds a monitor stream; its sink opens on its loop before any event reaches it.
    @discardableResult
    public func join(_ sink: any StreamSink) -> Int {
        let id = sinks.withLock { state in
            state.next += 1
            state.members[state.next] = sink
            return state.next
        }
        sink.eventLoop.execute { sink.open(resync: false) }
        return id
    }

    /// Removes a monitor stream (it ended or its client went away).
    public func leave(_ id: Int) {
        _ = sinks.withLock { $0.members.removeValue(forKey: id) }
    }

    func publish(_ entries: [EventHub.Entry]) {
        let members = sinks.withLock { $0.members }
        guard !members.isEmpty else { return }
        let events = entries.map { entry in
            ServerEvent(id: entry.event.id, type: "published", data: Self.describe(entry).jsonString)
        }
        let encoded = EncodedEvents(events, bytes: ByteBuffer(string: events.map(\.wireFormat).joined()))
        for (id, sink) in members {
            sink.eventLoop.execute {
                if !sink.write(encoded, flush: true) { self.leave(id) }
            }
        }
    }

    /// One event as the monitor shows it; the audience in the log's form (``Audience/json``).
    public static func describe(_ entry: EventHub.Entry) -> JSONValue {
        [
            "id": .int(Int64(entry.event.id)),
            "type": .string(entry.event.type),
            "audience": entry.audience.json,
            "data": .string(entry.event.data),
            "created": .int(entry.created.millisecondsSince1970),
        ]
    }
}
