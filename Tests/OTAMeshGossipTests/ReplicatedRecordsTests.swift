import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGossip

@Suite("replicated records")
struct ReplicatedRecordsTests {
    @Test("owner-numbered records: the highest version per (owner, key) wins; merge is idempotent and order-free")
    func merge() {
        var gw1 = ReplicatedRecords(owner: "gw-1")
        let first = gw1.put("device/aa", [1])
        let second = gw1.put("device/aa", [2])
        var a = ReplicatedRecords(owner: "gw-2")
        var b = ReplicatedRecords(owner: "gw-3")
        let news = [a.merge(first), a.merge(second), a.merge(second), a.merge(first), b.merge(second), b.merge(first)]
        #expect(news == [true, true, false, false, true, false])
        #expect(a.records == b.records && a.get("device/aa", owner: "gw-1")?.value == [2])
        let forged = a.merge(ReplicatedRecords.Record(key: "x", owner: "gw-2", version: 99, value: []))
        #expect(!forged, "only the owner writes its records")
    }

    @Test("a restarted owner numbered from its start time: its new records win at peers holding the last run's, by rumour and by anti-entropy")
    func restart() {
        var before = ReplicatedRecords(owner: "gw-1")
        before.startVersions(after: 1_000)
        for value in 0..<50 { before.put("dv/aa", [UInt8(value)]) }
        var peer = ReplicatedRecords(owner: "gw-2")
        peer.apply(before.delta(for: peer.digest(), maxRecords: 100))
        #expect(peer.get("dv/aa", owner: "gw-1")?.value == [49])

        var after = ReplicatedRecords(owner: "gw-1")  // the restart: nothing kept
        after.startVersions(after: 2_000)
        after.startVersions(after: 1_500)  // never backwards
        let rumour = after.put("dv/aa", [200])
        #expect(rumour.version == 2_001)
        #expect(peer.merge(rumour) && peer.get("dv/aa", owner: "gw-1")?.value == [200])
        after.put("dv/bb", [7])
        var late = ReplicatedRecords(owner: "gw-3")
        late.apply(before.delta(for: late.digest(), maxRecords: 100))
        late.apply(after.delta(for: late.digest(), maxRecords: 100))
        #expect(late.get("dv/aa", owner: "gw-1")?.value == [200] && late.get("dv/bb", owner: "gw-1")?.value == [7])
    }

    @Test("anti-entropy with truncated deltas, rumours out of order and random exchanges: all replicas converge")
    func convergence() {
        var random = SplitMix64(seed: 11)
        var nodes = (1...5).map { ReplicatedRecords(owner: "gw-\($0)") }
        for step in 0..<400 {
            let i = Int(random.next() % 5)
            let record = nodes[i].put("key-\(random.next() % 12)", [UInt8(step & 0xFF)])
            // Some writes are rumoured to a random peer right away (may skip versions there).
            if random.next() % 3 == 0 {
                let j = Int(random.next() % 5)
                if j != i { nodes[j].merge(record) }
            }
            // Now and then two nodes run a (small) push-pull exchange.
            if random.next() % 4 == 0 {
                let (p, q) = (Int(random.next() % 5), Int(random.next() % 5))
                guard p != q else { continue }
                let toP = nodes[q].delta(for: nodes[p].digest(), maxRecords: 1 + Int(random.next() % 5))
                let toQ = nodes[p].delta(for: nodes[q].digest(), maxRecords: 1 + Int(random.next() % 5))
                nodes[p].apply(toP)
                nodes[q].apply(toQ)
            }
        }
        // Quiesce: rounds of full exchanges with small deltas until nothing changes.
        for _ in 0..<200 {
            for p in 0..<5 {
                for q in 0..<5 where p != q {
                    nodes[p].apply(nodes[q].delta(for: nodes[p].digest(), maxRecords: 3))
                }
            }
        }
        for node in nodes.dropFirst() {
            #expect(node.records == nodes[0].records)
            #expect(node.digest() == nodes[0].digest())
        }
        // Every owner's last write for each key survives everywhere.
        #expect(nodes[0].records.count == Set(nodes.flatMap { $0.records.map { "\($0.owner)/\($0.key)" } }).count)
    }

    @Test("a truncated delta leaves no gap: the digest advances only as far as the delta covered")
    func truncation() {
        var writer = ReplicatedRecords(owner: "gw-1")
        for n in 0..<10 { writer.put("k\(n)", [UInt8(n)]) }
        var reader = ReplicatedRecords(owner: "gw-2")
        let part = writer.delta(for: reader.digest(), maxRecords: 4)
        #expect(part.records.map(\.version) == [1, 2, 3, 4] && part.upTo == ["gw-1": 4])
        reader.apply(part)
        reader.apply(part)  // idempotent
        #expect(reader.digest()["gw-1"] == 4)
        // A rumour of version 10 merges but does not move the digest past the gap.
        let rumour = reader.merge(writer.get("k9", owner: "gw-1")!)
        #expect(rumour)
        #expect(reader.digest()["gw-1"] == 4)
        reader.apply(writer.delta(for: reader.digest(), maxRecords: 100))
        #expect(reader.digest()["gw-1"] == 10 && reader.records.count == 10)
        #expect(writer.delta(for: reader.digest(), maxRecords: 100).records.isEmpty)
    }

    @Test("a restarted owner restored from its disk holds its records at their versions, numbers new ones above, and a fresh peer gets all of them")
    func restoreFromDisk() {
        var before = ReplicatedRecords(owner: "gw-1")
        before.startVersions(after: 1_000)
        let halt = before.put("ro/r1/h", Array("1 5 halted".utf8))
        let census = before.put("ro/r1/n", Array("3 5".utf8))

        var after = ReplicatedRecords(owner: "gw-1")
        after.restore([halt, census, ReplicatedRecords.Record(key: "ro/r1/h", owner: "gw-9", version: 7, value: [])])
        after.startVersions(after: 900)  // a clock behind the last run's versions
        #expect(after.get("ro/r1/h", owner: "gw-1") == halt && after.records.count == 2, "only its own records come back")
        let next = after.put("ro/r1/n", Array("4 9".utf8))
        #expect(next.version > census.version, "new records are numbered above the restored ones")

        // A peer that never had anything, exchanging with the restarted owner only, gets the
        // halt too: the owner's digest claims versions it really holds.
        var fresh = ReplicatedRecords(owner: "gw-3")
        fresh.apply(after.delta(for: fresh.digest(), maxRecords: 100))
        #expect(fresh.get("ro/r1/h", owner: "gw-1")?.value == halt.value)
        #expect(fresh.get("ro/r1/n", owner: "gw-1")?.value == next.value)
    }

    @Test("an owner that lost its disk takes back its earlier runs' records from a peer, never a version of this run")
    func takeBackEarlierRuns() {
        var before = ReplicatedRecords(owner: "gw-1")
        before.startVersions(after: 1_000)
        let halt = before.put("ro/r1/h", Array("1 5 halted".utf8))
        var peer = ReplicatedRecords(owner: "gw-2")
        peer.apply(before.delta(for: peer.digest(), maxRecords: 100))

        var after = ReplicatedRecords(owner: "gw-1")  // disk lost: nothing restored
        after.startVersions(after: 2_000)
        let news = after.apply(peer.delta(for: [:], maxRecords: 100))
        #expect(news == [halt] && after.get("ro/r1/h", owner: "gw-1") == halt)
        let older = after.merge(ReplicatedRecords.Record(key: "ro/r1/h", owner: "gw-1", version: 1_000, value: [9]))
        #expect(!older, "not newer than what it holds")
        let thisRun = after.merge(ReplicatedRecords.Record(key: "ro/r1/x", owner: "gw-1", version: 2_001, value: [9]))
        #expect(!thisRun, "versions above its start are its own to write")
        let rewritten = after.put("ro/r1/h", Array("2 9 halted again".utf8))
        let again = after.merge(halt)
        #expect(!again && after.get("ro/r1/h", owner: "gw-1") == rewritten, "an older copy never replaces its own newer write")
    }
}
