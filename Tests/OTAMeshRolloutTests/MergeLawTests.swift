import OTAMeshCommon
import OTAMeshRollout
import OTAMeshTrust
import PropertyBased
import Testing

/// Gateways exchange rollout state in any order, duplicated or late; they agree only if the
/// merge is a join: commutative, associative and idempotent.
@Suite("rollout state merge laws")
struct MergeLawTests {
    @Test("merge is commutative: a ⊔ b == b ⊔ a")
    func commutative() async {
        await propertyCheck(count: 150, input: Gens.ops(), Gens.ops()) { x, y in
            let (a, b) = (Gens.state(x), Gens.state(y))
            #expect(merged(a, b) == merged(b, a))
        }
    }

    @Test("merge is associative: (a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)")
    func associative() async {
        await propertyCheck(count: 150, input: Gens.ops(), Gens.ops(), Gens.ops()) { x, y, z in
            let (a, b, c) = (Gens.state(x), Gens.state(y), Gens.state(z))
            #expect(merged(merged(a, b), c) == merged(a, merged(b, c)))
        }
    }

    @Test("merge is idempotent (a ⊔ a == a) and absorbs what it already holds")
    func idempotent() async {
        await propertyCheck(count: 150, input: Gens.ops(), Gens.ops()) { x, y in
            let (a, b) = (Gens.state(x), Gens.state(y))
            #expect(merged(a, a) == a)
            let ab = merged(a, b)
            #expect(merged(ab, a) == ab)
            #expect(merged(ab, b) == ab)
        }
    }

    @Test("the state built from operations does not depend on their order or on repeats")
    func orderFree() async {
        await propertyCheck(count: 150, input: Gens.ops(), Gen.uint64()) { ops, seed in
            var rng = SplitMix64(seed: seed)
            let repeated = (ops + ops.filter { _ in Bool.random(using: &rng) }).shuffled(using: &rng)
            #expect(Gens.state(repeated) == Gens.state(ops))
        }
    }

    @Test("replicas converge: random order, duplicates, drops redelivered later and partial gossip in between")
    func convergence() async {
        await propertyCheck(count: 100, input: Gens.ops(0...30), Gen.uint64()) { ops, seed in
            var rng = SplitMix64(seed: seed)
            let reference = Gens.state(ops)
            let replicaCount = 4
            // Each replica's delivery schedule: every operation once in random order, some
            // delivered twice, and a dropped share left out of the first pass and redelivered
            // (again shuffled, again with duplicates) after it.
            var schedules: [[Int]] = []
            for _ in 0..<replicaCount {
                let dropped = Set(ops.indices.filter { _ in rng.next() % 3 == 0 })
                let first = ops.indices.filter { !dropped.contains($0) }
                let firstPass = (first + first.filter { _ in rng.next() % 4 == 0 }).shuffled(using: &rng)
                let again = Array(dropped) + dropped.filter { _ in rng.next() % 2 == 0 }
                schedules.append(firstPass + again.shuffled(using: &rng))
            }
            var replicas = Array(repeating: RolloutState(id: Fixture.rollout), count: replicaCount)
            var position = Array(repeating: 0, count: replicaCount)
            while position.indices.contains(where: { position[$0] < schedules[$0].count }) {
                for r in 0..<replicaCount where position[r] < schedules[r].count {
                    ops[schedules[r][position[r]]].apply(to: &replicas[r])
                    position[r] += 1
                }
                // Anti-entropy: now and then a replica merges another's partial state.
                if rng.next() % 3 == 0 {
                    let (from, to) = (Int(rng.next() % UInt64(replicaCount)), Int(rng.next() % UInt64(replicaCount)))
                    let snapshot = replicas[from]
                    replicas[to].merge(snapshot)
                }
                // Whatever a replica holds on the way stays below the join of everything.
                if rng.next() % 4 == 0 {
                    let replica = replicas[Int(rng.next() % UInt64(replicaCount))]
                    #expect(merged(replica, reference) == reference)
                }
            }
            for (index, replica) in replicas.enumerated() {
                #expect(replica == reference, "replica \(index) differs after every operation arrived")
            }
        }
    }

    @Test("copies of one command body union their signatures: A's and B's copies make a 2-of-3 plan")
    func commandUnion() throws {
        var state = Fixture.state(Pool.copies[0])
        state.merge(Fixture.state(Pool.copies[1]))
        let copies = try #require(state.commands[1])
        #expect(copies.count == 1, "one body, one entry")
        #expect(copies.values.first?.signatures.count == 2)
        #expect(Fixture.view(state).plan == Fixture.plan())
        // Different bodies at one sequence (a pause and a resume, both #2) are kept apart.
        let controls = Gens.state([.command(Pool.copies[3]), .command(Pool.copies[4]), .command(Pool.copies[5])]).commands[2]
        #expect(controls?.count == 2)
        #expect(controls?.values.map(\.signatures.count).sorted() == [1, 2])
    }

    @Test("a copy keeps at most 16 signatures, the smallest, whatever order the junk arrived in")
    func signatureCap() async {
        await propertyCheck(count: 100, input: Gen.uint64()) { seed in
            var rng = SplitMix64(seed: seed)
            var state = RolloutState(id: Fixture.rollout)
            for entry in Pool.junk.shuffled(using: &rng) {
                state.add(CommandCopy(signed: Pool.planBody, signatures: [entry]))
            }
            let held = state.commands[1]?.values.first?.signatures
            #expect(held == Set(Pool.junk.sorted().prefix(CommandCopy.maxSignatures)))
        }
    }
}
