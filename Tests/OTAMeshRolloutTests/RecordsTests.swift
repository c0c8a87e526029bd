import OTAMeshCommon
import OTAMeshRollout
import OTAMeshTrust
import PropertyBased
import Testing

/// Rollout state rides on owner-keyed gossip records; decoding everyone's records, in whatever
/// order and with whatever repeats, must give back the state they were written from.
@Suite("rollout records")
struct RecordsTests {
    /// The records a mesh would hold for `state`: each component written by the gateway it names
    /// (a command copy by an admin tool of its own, since one owner holds one copy per sequence).
    static func records(of state: RolloutState) -> (entries: [RolloutRecords.Entry], versions: [String: UInt64]) {
        let id = state.id
        var entries: [RolloutRecords.Entry] = []
        var versions: [String: UInt64] = [:]
        for (device, outcome) in state.outcomes {
            let record = RolloutRecords.outcome(outcome, device: device, rollout: id)
            entries.append(.init(key: record.key, owner: outcome.gateway, value: record.value))
        }
        for (gateway, census) in state.census {
            let record = RolloutRecords.census(census.perStage, at: census.at, rollout: id)
            entries.append(.init(key: record.key, owner: gateway, value: record.value))
            versions["\(gateway) \(record.key)"] = census.version
        }
        if let halt = state.halt {
            let record = RolloutRecords.halt(halt, rollout: id)
            entries.append(.init(key: record.key, owner: halt.gateway, value: record.value))
        }
        if let stage = state.stage {
            let record = RolloutRecords.stage(stage, rollout: id)
            entries.append(.init(key: record.key, owner: stage.gateway, value: record.value))
        }
        if let completion = state.completion {
            let record = RolloutRecords.completion(completion, rollout: id)
            entries.append(.init(key: record.key, owner: completion.gateway, value: record.value))
        }
        for (sequence, copies) in state.commands {
            for (hash, copy) in copies {
                for part in RolloutRecords.command(copy, rollout: id) {
                    entries.append(.init(key: part.key, owner: "admin-\(sequence)-\(hash.prefix(8))", value: part.value))
                }
            }
        }
        return (entries, versions)
    }

    @Test("encoding every component and decoding the shuffled records, with repeats, gives the same state")
    func roundTrip() async {
        await propertyCheck(count: 150, input: Gens.ops(0...25), Gen.uint64()) { ops, seed in
            var rng = SplitMix64(seed: seed)
            let state = Gens.state(ops)
            let (entries, versions) = Self.records(of: state)
            let delivered = (entries + entries.filter { _ in rng.next() % 3 == 0 }).shuffled(using: &rng)
            let decoded = RolloutRecords.decode(delivered, versions: versions)
            #expect(decoded.problems.isEmpty, "\(decoded.problems)")
            #expect(decoded.rollouts.keys.allSatisfy { $0 == Fixture.rollout })
            #expect((decoded.rollouts[Fixture.rollout] ?? RolloutState(id: Fixture.rollout)) == state)
            // What each owner wrote is reported per owner, so a gateway can tell whether its union adds anything.
            let owners = decoded.copiesByOwner[Fixture.rollout] ?? [:]
            #expect(owners.values.map(\.count).reduce(0, +) == state.commands.values.map(\.count).reduce(0, +))
        }
    }

    @Test("a command split into parts appears only once every part arrived; parts that do not hash together are reported")
    func commandParts() throws {
        // 16 signatures make an envelope of several 1000-byte parts.
        let copy = CommandCopy(signed: Pool.planBody, signatures: Set(Pool.junk.prefix(16)))
        let parts = RolloutRecords.command(copy, rollout: Fixture.rollout)
        #expect(parts.count > 2)
        let entries = parts.map { RolloutRecords.Entry(key: $0.key, owner: "gw-a", value: $0.value) }
        let partial = RolloutRecords.decode(Array(entries.dropLast()))
        #expect(partial.problems.isEmpty, "a command still arriving is not a problem")
        #expect(partial.rollouts[Fixture.rollout]?.commands.isEmpty ?? true)
        let whole = RolloutRecords.decode(entries.reversed())
        #expect(whole.problems.isEmpty)
        #expect(whole.rollouts[Fixture.rollout]?.commands[1]?[copy.bodyHash] == copy)

        // The same slot from another envelope (its hash differs): never stitched into a command.
        let other = RolloutRecords.command(CommandCopy(signed: Pool.planBody, signatures: Set(Pool.junk.suffix(16))), rollout: Fixture.rollout)
        var mixed = entries
        mixed[1] = RolloutRecords.Entry(key: other[1].key, owner: "gw-a", value: other[1].value)
        #expect(RolloutRecords.decode(mixed).rollouts[Fixture.rollout]?.commands.isEmpty ?? true)

        // Parts whose header claims a hash the bytes do not have.
        var forged = entries
        forged[0].value[0] = forged[0].value[0] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        let forgedHash = forged[0].value[0..<16]
        for index in forged.indices.dropFirst() {
            forged[index].value.replaceSubrange(0..<16, with: forgedHash)
        }
        let decoded = RolloutRecords.decode(forged)
        #expect(decoded.rollouts[Fixture.rollout]?.commands.isEmpty ?? true)
        #expect(decoded.problems.contains { "\($0)".contains("do not hash to") })
    }

    @Test("a command with a control character in a string replicates (fuzz finding: its canonical bytes did not parse)")
    func commandWithControlCharacter() throws {
        let payload = JSONValue.object(["rollout": .string(Fixture.rollout), "note": .string("line 1\nline 2\u{01}")])
        let command = SignedCommand(site: Fixture.site, sequence: 2, kind: "rollout.pause", payload: payload, issued: Fixture.issued)
        let copy = Fixture.signed(command, by: [Fixture.a, Fixture.b])
        #expect(copy.command != nil)
        let entries = RolloutRecords.command(copy, rollout: Fixture.rollout).map { RolloutRecords.Entry(key: $0.key, owner: "gw-a", value: $0.value) }
        let decoded = RolloutRecords.decode(entries)
        #expect(decoded.problems.isEmpty, "\(decoded.problems)")
        #expect(decoded.rollouts[Fixture.rollout]?.commands[2]?[copy.bodyHash] == copy)
    }

    @Test("a command filed under another sequence than it carries is refused")
    func commandUnderWrongSequence() {
        let pause = Pool.copies[3]
        let parts = RolloutRecords.command(pause, rollout: Fixture.rollout)
        let entries = parts.map { RolloutRecords.Entry(key: $0.key.replacingOccurrences(of: "/c/2/", with: "/c/7/"), owner: "gw-a", value: $0.value) }
        let decoded = RolloutRecords.decode(entries)
        #expect(decoded.rollouts[Fixture.rollout]?.commands.isEmpty ?? true)
        #expect(decoded.problems.count == 1)
    }

    @Test("malformed records are reported with their key and why, never fatal")
    func malformedRecords() {
        let id = Fixture.rollout
        let bad: [(String, String)] = [
            ("ro/r-xyz/d/dev-1", "1 offered 5 0 0 "),
            ("ro/\(id)/d/dev-1", "1 rebooting 5 0 0 "),
            ("ro/\(id)/d/dev-1", "1 offered 10000 0 0 "),
            ("ro/\(id)/d/", "1 offered 5 0 0 "),
            ("ro/\(id)/n", "3,x,40"),
            ("ro/\(id)/n", "3,-1"),
            ("ro/\(id)/n", ""),
            ("ro/\(id)/h", "two 100 reason"),
            ("ro/\(id)/s", "20 100"),
            ("ro/\(id)/s", "1"),
            ("ro/\(id)/c/1", "0123456789abcdef 0/1\n{}"),
            ("ro/\(id)/c/1/0", "0123456789abcdef 0/99\n{}"),
            ("ro/\(id)/q", "?"),
            // Numbers no gateway writes, which would overflow the view's arithmetic.
            ("ro/\(id)/n", "3,10000001"),
            ("ro/\(id)/n", "3,9223372036854775807"),
            ("ro/\(id)/d/dev-1", "1 offered 5 -9223372036854775808 0 "),
            ("ro/\(id)/d/dev-1", "1 offered 5 0 -1 "),
            ("ro/\(id)/h", "1 -5 reason"),
            ("ro/\(id)/s", "1 -9223372036854775808"),
        ]
        let entries = bad.map { RolloutRecords.Entry(key: $0.0, owner: "gw-a", value: Array($0.1.utf8)) }
        let decoded = RolloutRecords.decode(entries + [RolloutRecords.Entry(key: "members/gw-a", owner: "gw-a", value: [1, 2])])
        #expect(decoded.problems.count == bad.count)
        for (problem, (key, _)) in zip(decoded.problems, bad) {
            #expect(problem.description.hasPrefix("rollout record \(key): "), "\(problem)")
        }
        #expect(decoded.rollouts.values.allSatisfy { $0.outcomes.isEmpty && $0.census.isEmpty && $0.halt == nil && $0.stage == nil })
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
