import HeraldEvents
import HeraldStorage
import NIOPosix
import Testing

@testable import HeraldApplication

/// What an ended live stream held at an earlier id, rebuilt from its journal of enters and
/// leaves, and where a short journal can no longer tell.
@Suite struct LiveQueryJournalTests {
    typealias Subscriber = LiveQueries.Subscriber

    func subscriber(journalLength: Int) -> Subscriber {
        let query = LiveQueries.Query(query: EntityQuery(type: "Item"), nesting: .default, view: nil)
        let sink = RecordingSink(eventLoop: MultiThreadedEventLoopGroup.singleton.any())
        let subscriber = Subscriber(
            id: 1,
            query: query,
            caller: .superuser,
            origin: nil,
            sink: sink,
            journalLength: journalLength
        )
        subscriber.reset(known: ["kept"], position: 10)
        return subscriber
    }

    /// One change record for `id` at `logID`; `matches` says whether it matches afterwards.
    func step(_ subscriber: Subscriber, _ logID: UInt64, _ id: String, matches: Bool) -> [String] {
        let batch = LiveQueries.ChangeBatch([(logID, ObjectChange(type: "Item", id: id, kind: .updated, keys: ["x"]))])
        let evaluation = LiveQueries.Evaluation(rendered: matches ? [id: #"{"id":"\#(id)"}"#] : [:], all: nil)
        return subscriber.follow(evaluation, batch).map(\.type)
    }

    @Test func whatAStreamHeldIsRebuiltForEveryIdItWentThrough() {
        let stream = subscriber(journalLength: 100)
        #expect(step(stream, 11, "a", matches: true) == ["enter"])
        #expect(step(stream, 12, "kept", matches: false) == ["leave"])
        #expect(step(stream, 13, "a", matches: true) == ["update"])
        #expect(step(stream, 14, "b", matches: true) == ["enter"])
        #expect(stream.held(at: 10) == ["kept"])
        #expect(stream.held(at: 11) == ["kept", "a"])
        #expect(stream.held(at: 12) == ["a"])
        #expect(stream.held(at: 13) == ["a"])
        #expect(stream.held(at: 14) == ["a", "b"])
        // Before it started, or past where it got: not this stream's ids.
        #expect(stream.held(at: 9) == nil)
        #expect(stream.held(at: 15) == nil)
    }

    @Test func aShortJournalTellsOnlyWhatItStillHas() {
        let stream = subscriber(journalLength: 2)
        _ = step(stream, 11, "a", matches: true)
        _ = step(stream, 12, "b", matches: true)
        _ = step(stream, 13, "c", matches: true)
        // The step at 11 is forgotten: ids from 11 on are still told, earlier ones not.
        #expect(stream.held(at: 11) == ["kept", "a"])
        #expect(stream.held(at: 12) == ["kept", "a", "b"])
        #expect(stream.held(at: 10) == nil)
    }
}
