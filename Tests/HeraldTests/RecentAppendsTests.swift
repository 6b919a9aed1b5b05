import Testing

@testable import HeraldStorage

@Suite struct RecentAppendsTests {
    @Test func aNotedIdIsSkippedOnceAndAFailedCommitsIsNot() {
        let recent = RecentAppends()
        recent.note(7)
        recent.note(9)
        // The notice of an own commit is skipped, once; another process's is not.
        #expect(recent.take(7))
        #expect(!recent.take(7))
        #expect(!recent.take(8))
        // A commit that failed (or may have) is forgotten: its notice, if any, is read.
        recent.forget(9)
        #expect(!recent.take(9))
        recent.note(10)
        recent.removeAll()
        #expect(!recent.take(10))
    }

    @Test func itKeepsTheNewestIdsUpToItsCapacity() {
        let recent = RecentAppends()
        let count = Int64(RecentAppends.capacity)
        for id in 1...(count + 10) { recent.note(id) }
        // The oldest ten were pushed out; every later one is still known.
        #expect((1...10).allSatisfy { !recent.take($0) })
        #expect((11...(count + 10)).allSatisfy { recent.take($0) })
    }
}
