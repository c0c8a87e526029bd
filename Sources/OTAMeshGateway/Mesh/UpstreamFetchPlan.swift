import Crypto
import OTAMeshCommon

/// Which gateways of a site download a new image from upstream: only `fetchers` of them (by
/// default one); the others take it from the mesh. Pure and deterministic: every gateway ranks
/// the alive upstream-connected members the same way — rendezvous hashing, SHA-256(image ‖
/// name) — so they agree without a word, a different gateway leads for each image (the
/// upstream load spreads), and when a fetcher leaves the mesh (dies mid-transfer) the next in
/// rank takes over at the next round. A fetcher that stays alive but brings nothing is
/// joined by the next in rank every `handover` that passes without a holder.
public struct UpstreamFetchPlan: Sendable, Equatable {
    /// How many gateways fetch each image from upstream (0: every gateway fetches for itself).
    public var fetchers: Int
    /// Milliseconds without the image in the mesh after which one more gateway fetches it.
    public var handoverMS: Int64

    public init(fetchers: Int = 1, handoverMS: Int64 = 120_000) {
        self.fetchers = fetchers
        self.handoverMS = handoverMS
    }

    public enum Decision: Sendable, Equatable {
        /// This gateway fetches it from upstream.
        case fetch
        /// A peer holds it: take it from the mesh.
        case fromMesh
        /// Wait: these gateways fetch it from upstream for the site.
        case wait(fetchers: [String])
    }

    /// The upstream-connected gateways in rank order for `image` (SHA-256 hex).
    public static func ranking(image: String, candidates: some Sequence<String>) -> [String] {
        Set(candidates).map { name in (name, hexString(SHA256.hash(data: Array("\(image)\u{1f}\(name)".utf8)))) }
            .sorted { ($0.1, $0.0) < ($1.1, $1.0) }.map(\.0)
    }

    /// What `me` does about `image`, which it lacks. `candidates`: the alive members with an
    /// upstream (`me` included when it has one); `held`: some alive peer holds the image;
    /// `waitedMS`: how long this gateway has wanted it (its first decision to wait).
    public func decide(image: String, me: String, candidates: some Sequence<String>, held: Bool, waitedMS: Int64) -> Decision {
        if held { return .fromMesh }
        guard fetchers > 0 else { return .fetch }
        let ranked = Self.ranking(image: image, candidates: Array(candidates) + [me])
        let extra = handoverMS > 0 ? Int(max(0, waitedMS) / handoverMS) : 0
        let chosen = Array(ranked.prefix(fetchers + extra))
        return chosen.contains(me) ? .fetch : .wait(fetchers: chosen)
    }
}
