import Testing

@testable import OTAMeshGossip

/// SWIM's and gossip's settings as one value that is checked before a mesh runs on it.
@Suite("SWIM settings")
struct SWIMSettingsTests {
    @Test("memberlist's LAN profile is valid; each setting out of range is named with its rule")
    func validation() throws {
        #expect(try SWIMSettings().validated() == SWIMSettings())
        func invalid(_ change: (inout SWIMSettings) -> Void) -> String? {
            var settings = SWIMSettings()
            change(&settings)
            do { _ = try settings.validated() } catch { return error.setting }
            return nil
        }
        #expect(invalid { $0.probeInterval = 0 } == "probeInterval")
        #expect(invalid { $0.gossipInterval = .nan } == "gossipInterval")
        #expect(invalid { $0.probeTimeout = 1.5 } == "probeTimeout", "a probe timeout as long as the period")
        #expect(invalid { $0.indirectChecks = 0 } == "indirectChecks")
        #expect(invalid { $0.suspicionMultiplier = 0.5 } == "suspicionMultiplier")
        #expect(invalid { $0.maxPacketBytes = 100 } == "maxPacketBytes")
        #expect(invalid { $0.maxPacketBytes = 70_000 } == "maxPacketBytes")
        var refused: SWIMSettings.Invalid?
        var bad = SWIMSettings()
        bad.probeTimeout = 2
        do { _ = try bad.validated() } catch { refused = error }
        #expect(refused?.description == "gossip setting probeTimeout: must be shorter than probeInterval (1.0 s), is 2.0 s")
    }
}
