import Synchronization

/// The image bytes this gateway moved since it started: sent to devices, fetched from peers and
/// fetched from upstream. Each gateway announces its own in its member info (every 30 s when they
/// changed), so every gateway's dashboard shows the whole site's.
public final class TrafficTotals: Sendable {
    let served = Atomic<Int64>(0)
    let fromPeers = Atomic<Int64>(0)
    let fromUpstream = Atomic<Int64>(0)

    public init() {}

    func addServed(_ bytes: Int) { served.add(Int64(bytes), ordering: .relaxed) }
    func addFromPeers(_ bytes: Int64) { fromPeers.add(bytes, ordering: .relaxed) }
    func addFromUpstream(_ bytes: Int64) { fromUpstream.add(bytes, ordering: .relaxed) }

    /// As ``MemberInfo/traffic`` carries it.
    public var current: MemberInfo.Traffic {
        MemberInfo.Traffic(
            servedToDevices: served.load(ordering: .relaxed), fromPeers: fromPeers.load(ordering: .relaxed),
            fromUpstream: fromUpstream.load(ordering: .relaxed))
    }
}
