import OTAMeshGateway
import Testing

/// One upstream fetch per site (issue 22): who downloads a new image, decided alike everywhere.
@Suite("upstream fetch plan")
struct UpstreamFetchPlanTests {
    static let gateways = (1...8).map { "gw-\($0)" }
    static let image = String(repeating: "ab", count: 32)

    @Test("every gateway ranks the same way whatever order it lists the members in; one fetches, the others wait for it")
    func oneFetcher() {
        let plan = UpstreamFetchPlan(fetchers: 1, handoverMS: 60_000)
        let ranked = UpstreamFetchPlan.ranking(image: Self.image, candidates: Self.gateways)
        #expect(UpstreamFetchPlan.ranking(image: Self.image, candidates: Self.gateways.reversed()) == ranked)
        var fetching: [String] = []
        for me in Self.gateways {
            let others = Self.gateways.filter { $0 != me }.shuffled()
            switch plan.decide(image: Self.image, me: me, candidates: others, held: false, waitedMS: 0) {
            case .fetch: fetching.append(me)
            case .wait(let fetchers): #expect(fetchers == [ranked[0]])
            case .fromMesh: Issue.record("nobody holds it yet")
            }
        }
        #expect(fetching == [ranked[0]])
    }

    @Test("different images are led by different gateways (the upstream load spreads)")
    func spreads() {
        let leaders = Set((0..<64).map { n in UpstreamFetchPlan.ranking(image: "image-\(n)", candidates: Self.gateways)[0] })
        #expect(leaders.count >= 6, "\(leaders)")
    }

    @Test("a peer holding it: take it from the mesh; the fetcher gone from the membership: the next in rank fetches")
    func handOver() {
        let plan = UpstreamFetchPlan(fetchers: 1, handoverMS: 60_000)
        let ranked = UpstreamFetchPlan.ranking(image: Self.image, candidates: Self.gateways)
        #expect(plan.decide(image: Self.image, me: ranked[0], candidates: Self.gateways, held: true, waitedMS: 0) == .fromMesh)
        let survivors = Self.gateways.filter { $0 != ranked[0] }
        #expect(plan.decide(image: Self.image, me: ranked[1], candidates: survivors, held: false, waitedMS: 0) == .fetch)
        #expect(plan.decide(image: Self.image, me: ranked[2], candidates: survivors, held: false, waitedMS: 0) == .wait(fetchers: [ranked[1]]))
    }

    @Test("a fetcher that stays alive but brings nothing is joined by the next in rank each handover period")
    func stalled() {
        let plan = UpstreamFetchPlan(fetchers: 1, handoverMS: 60_000)
        let ranked = UpstreamFetchPlan.ranking(image: Self.image, candidates: Self.gateways)
        #expect(plan.decide(image: Self.image, me: ranked[1], candidates: Self.gateways, held: false, waitedMS: 59_999) == .wait(fetchers: [ranked[0]]))
        #expect(plan.decide(image: Self.image, me: ranked[1], candidates: Self.gateways, held: false, waitedMS: 60_000) == .fetch)
        #expect(
            plan.decide(image: Self.image, me: ranked[3], candidates: Self.gateways, held: false, waitedMS: 120_000)
                == .wait(fetchers: Array(ranked.prefix(3))))
    }

    @Test("fetchers 0 keeps the old behaviour (each gateway fetches for itself); a configured few fetch together")
    func counts() {
        let ranked = UpstreamFetchPlan.ranking(image: Self.image, candidates: Self.gateways)
        #expect(UpstreamFetchPlan(fetchers: 0).decide(image: Self.image, me: ranked[7], candidates: Self.gateways, held: false, waitedMS: 0) == .fetch)
        let two = UpstreamFetchPlan(fetchers: 2, handoverMS: 60_000)
        #expect(two.decide(image: Self.image, me: ranked[1], candidates: Self.gateways, held: false, waitedMS: 0) == .fetch)
        #expect(two.decide(image: Self.image, me: ranked[2], candidates: Self.gateways, held: false, waitedMS: 0) == .wait(fetchers: Array(ranked.prefix(2))))
        // Alone (no other upstream gateway alive), a gateway fetches for itself.
        #expect(UpstreamFetchPlan().decide(image: Self.image, me: "gw-1", candidates: [], held: false, waitedMS: 0) == .fetch)
    }
}
