import Crypto
import OTAMeshCommon
import OTAMeshGateway
import OTAMeshGossip
import OTAMeshRollout
import OTAMeshTrust

/// Seeds only Swift can make — sealed gossip packets, commands signed by the fuzz trust's
/// admin, rollout records — by target and file name. Deterministic (fixed keys, nonces and
/// times), so rewriting them (OTAMESH_FUZZ_WRITE_SEEDS=1 swift test --filter FuzzCorpusTests)
/// changes nothing unless the encoders changed.
public enum FuzzSeeds {
    static let issued: Int64 = 1_795_000_000
    static let signer = TUFSigner.ed25519(FuzzTargets.admin!)

    static func signed(_ command: SignedCommand) -> SignedCommand {
        var command = command
        try! command.sign(with: signer)
        return command
    }

    static let plan = RolloutPlan(
        id: "r-0123456789ab",
        target: RolloutTarget(
            path: "esp32/app-2.0.0.bin", sha256: String(repeating: "5e", count: 32), length: 1_234_567,
            version: "2.0.0", hardware: "esp32"),
        selector: try! DeviceSelector(parsing: "hardware=esp32"), stages: [10, 50, 100], window: try! MaintenanceWindow(parsing: "22:00-06:00"))

    public static func generated() -> [String: [String: [UInt8]]] {
        let planCommand = signed(plan.command(site: "fuzz-site", issued: issued))
        let pause = signed(RolloutControl(rollout: plan.id, sequence: 2, kind: .pause, issued: issued).command(site: "fuzz-site"))
        let advance = signed(RolloutControl(rollout: plan.id, sequence: 3, kind: .advance, stage: 1, issued: issued).command(site: "fuzz-site"))
        let credentials = try! SignedRequest.sign(
            with: signer, method: "POST", target: "/api/v1/rollouts", body: Array("{}".utf8),
            time: FuzzTargets.now, nonce: "00112233445566778899aabbccddeeff")
        // Regression (canonical JSON with a control character did not parse back, so such a
        // command never replicated): a control with a multi-line note.
        let note = signed(
            SignedCommand(
                site: "fuzz-site", sequence: 4, kind: "rollout.pause",
                payload: .object(["rollout": .string(plan.id), "note": .string("line 1\nline 2\u{01}")]), issued: issued))
        var signedCommand: [String: [UInt8]] = [
            "control-character": [0] + note.bytes,
            "plan": [0] + planCommand.bytes,
            "pause": [0] + pause.bytes,
            "advance": [0] + advance.compactBytes,
            "site-trust": [1] + FuzzTargets.trust.json.prettyBytes,
        ]
        signedCommand["header"] = [2] + Array(credentials.header.utf8)

        // Rollout records, as `key\towner\tvalue` lines.
        var lines: [(String, String, [UInt8])] = []
        for copy in [CommandCopy(planCommand), CommandCopy(pause), CommandCopy(advance)] {
            for part in RolloutRecords.command(copy, rollout: plan.id) { lines.append((part.key, "gw-1", part.value)) }
        }
        let outcome = DeviceOutcome(
            epoch: 0, phase: .succeeded, bucket: 3, gateway: "gw-1", started: FuzzTargets.now * 1000,
            updated: FuzzTargets.now * 1000 + 5000, detail: "2.0.0")
        let records = [
            RolloutRecords.outcome(outcome, device: "aa:bb:cc:dd:ee:ff", rollout: plan.id),
            RolloutRecords.census([3, 12, 40], at: 1_733_000_000_000, rollout: plan.id),
            RolloutRecords.halt(HaltMark(epoch: 0, at: FuzzTargets.now * 1000, gateway: "gw-2", reason: "2 failures"), rollout: plan.id),
            RolloutRecords.stage(StageMark(stage: 1, since: FuzzTargets.now * 1000, gateway: "gw-1"), rollout: plan.id),
            RolloutRecords.completion(CompletionMark(at: FuzzTargets.now * 1000, gateway: "gw-1", succeeded: 40, failed: 0), rollout: plan.id),
        ]
        for record in records { lines.append((record.key, "gw-1", record.value)) }
        func text(_ lines: [(String, String, [UInt8])]) -> [UInt8] {
            lines.flatMap { Array("\($0.0)\t\($0.1)\t".utf8) + $0.2 + [UInt8(ascii: "\n")] }
        }
        let rolloutRecords = [
            "commands": text(Array(lines.prefix(3))),
            "marks": text(Array(lines.dropFirst(3))),
        ]

        // Gossip payloads (mode 1: sealed by the target) and one packet as received (mode 0).
        let me = NodeAddress(name: "gw-1", ip: [127, 0, 0, 1], port: 7946)
        let peer = NodeAddress(name: "gw-2", ip: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], port: 7947)
        let member = MemberInfo(httpPort: 8070, software: "otamesh 1.0", metadataVersion: 1, keys: ["ab12"])
        let summary = DeviceSummary(
            id: "aa:bb:cc:dd:ee:ff", family: DeviceFamily(rawValue: "esp-httpupdate"), hardware: "esp32", variant: "esp32", version: "1.0.0",
            lastSeen: 1_795_000_000, lastAnswer: "up to date")
        let rotation = KeyRotation(id: 7, key: Array(repeating: 9, count: 32), phase: .use, retire: ["abcd"])
        let probe: [WireMessage] = [
            .ping(sequence: 1, target: peer, source: me), .pingRequest(sequence: 2, target: peer, requester: me),
            .ack(sequence: 1, from: peer), .nack(sequence: 2, from: peer),
        ]
        let state: [WireMessage] = [
            .alive(node: me, incarnation: 3, metadata: member.encoded()), .suspect(node: "gw-2", incarnation: 1, from: "gw-1"),
            .dead(node: "gw-3", incarnation: 9, from: "gw-1"), .digest(owner: "gw-1", version: 12),
            .covered(owner: "gw-2", version: 4),
        ]
        let records2: [WireMessage] =
            [
                .record(
                    key: DeviceSummaries.prefix + summary.id, owner: "gw-1", version: 5,
                    value: DeviceSummaries.encode(summary) ?? []),
                .record(key: "keyring/rotation", owner: "gw-1", version: 6, value: rotation.encoded()),
            ]
            + lines.prefix(6).enumerated().map { .record(key: $1.0, owner: $1.1, version: UInt64($0 + 1), value: $1.2) }
        let gossip: [String: [UInt8]] = [
            "probe": [1] + (try! WireCodec.encode(probe)),
            "membership": [1] + (try! WireCodec.encode(state)),
            "records": [1] + (try! WireCodec.encode(records2)),
            "sealed-packet": [0] + FuzzTargets.keyring.seal(try! WireCodec.encode(probe), nonce: Array(repeating: 2, count: 12)),
        ]
        let journalRecords = lines.prefix(6).enumerated().map { ReplicatedRecords.Record(key: $1.0, owner: $1.1, version: UInt64($0 + 1), value: $1.2) }
        let journal: [String: [UInt8]] = [
            "rollout": RecordJournal.file(journalRecords),
            "torn": Array(RecordJournal.file(journalRecords).dropLast(3)),
        ]
        return ["signed-command": signedCommand, "rollout-records": rolloutRecords, "gossip-packet": gossip, "records-journal": journal]
    }
}
