import OTAMeshCommon
import OTAMeshGossip
import OTAMeshRollout
import Testing

@testable import OTAMeshGateway

/// The gateway's gossip channels: each reads only its own keys, and only values it can vouch for.
@Suite("mesh channels")
struct MeshChannelsTests {
    static let digest = String(repeating: "ab", count: 32)

    static func record(_ key: String, _ owner: String = "gw1", _ value: [UInt8]) -> ReplicatedRecords.Record {
        ReplicatedRecords.Record(key: key, owner: owner, version: 1, value: value)
    }

    @Test("holdings: owner → the images it holds; a dropped image, a name that is not a SHA-256 or a value not 0/1 is not a holding")
    func holdings() {
        let records = [
            Self.record("held/" + Self.digest, "gw1", [1]),
            Self.record("held/" + Self.digest, "gw2", [0]),
            Self.record("held/" + Self.digest.uppercased(), "gw3", [1]),
            Self.record("held/\u{1b}[2J", "gw3", [1]),
            Self.record("held/" + Self.digest, "gw4", [2]),
            Self.record("ro/" + Self.digest, "gw5", [1]),
        ]
        #expect(Holdings.view(of: records) == ["gw1": [Self.digest]])
        #expect(!Holdings.durable)
    }

    @Test("device summaries: dv/ID and dv.run share one channel; a retraction and a run are told apart from a summary")
    func deviceSummaries() throws {
        let summary = DeviceSummary(id: "dev-1", family: .generic, hardware: "esp32", variant: nil, version: "1.0.0", lastSeen: 10, lastAnswer: nil)
        let value = try #require(DeviceSummaries.encode(summary))
        let records = [
            Self.record("dv/dev-1", "gw2", value),
            Self.record("dv/dev-2", "gw2", []),
            Self.record("dv.run", "gw2", Array("42".utf8)),
            Self.record("dv.run", "gw3", Array("not a number".utf8)),
            Self.record("dvx", "gw3", value),
        ]
        let view = DeviceSummaryChannel.view(of: records)
        #expect(view.devices.map(\.owner) == ["gw2"] && view.devices.first?.summary == summary)
        #expect(view.runs == ["gw2": 42])
        #expect(DeviceSummaryChannel.decode(name: "/dev-2", []) == .retracted("dev-2"))
        #expect(!MeshChannels.all.isDurable("dv/dev-1") && !MeshChannels.all.isDurable("dv.run"))
    }

    @Test("rollouts: the records and versions the engine decodes; durable, so a restarted gateway keeps its halt")
    func rollouts() {
        let (entries, versions) = RolloutChannel.view(of: [Self.record("ro/r-1/h", "gw1", [7]), Self.record("held/" + Self.digest, "gw1", [1])])
        #expect(entries == [RolloutRecords.Entry(key: "ro/r-1/h", owner: "gw1", value: [7])] && versions == ["gw1 ro/r-1/h": 1])
        #expect(MeshChannels.all.isDurable("ro/r-1/h") && MeshChannels.all.isDurable(KeyRotation.recordKey))
    }
}
