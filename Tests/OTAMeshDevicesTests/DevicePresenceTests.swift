import Testing

@testable import OTAMeshDevices

/// The reboot a push waits for, as every push machine follows it.
@Suite("device presence")
struct DevicePresenceTests {
    @Test("answering until the first miss; away counts from the first miss of each absence; back once it answers again, for good")
    func presence() {
        var presence = DevicePresence.answering
        let first = presence.answered()
        #expect(!first, "never away: not restarted")
        let gone = presence.missed(now: 1_000)
        #expect(gone == 0 && presence == .away(since: 1_000))
        let later = presence.missed(now: 4_000)
        #expect(later == 3_000, "still counted from the first miss")
        let returned = presence.answered()
        #expect(returned && presence == .back)
        let again = presence.answered()
        #expect(again, "once back, it restarted: an answer does not undo that")
        let fresh = presence.missed(now: 9_000)
        let fresher = presence.missed(now: 9_500)
        #expect(fresh == 0 && fresher == 500, "a new absence counts afresh")
    }
}
