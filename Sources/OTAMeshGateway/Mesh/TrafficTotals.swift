import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The image bytes this gateway moved: sent to devices, fetched from peers and fetched from
/// upstream, counted since its data directory first counted them (`DATA/traffic.json`, saved
/// every 30 s and at a clean stop, so a restart loses at most 30 s of counting). Each gateway
/// announces its own in its member info (every 30 s when they changed), so every gateway's
/// dashboard shows the whole site's.
public final class TrafficTotals: Sendable {
    let served: Atomic<Int64>
    let fromPeers: Atomic<Int64>
    let fromUpstream: Atomic<Int64>

    public init(_ start: MemberInfo.Traffic = MemberInfo.Traffic(servedToDevices: 0, fromPeers: 0, fromUpstream: 0)) {
        served = Atomic(start.servedToDevices)
        fromPeers = Atomic(start.fromPeers)
        fromUpstream = Atomic(start.fromUpstream)
    }

    func addServed(_ bytes: Int) { served.add(Int64(bytes), ordering: .relaxed) }
    func addFromPeers(_ bytes: Int64) { fromPeers.add(bytes, ordering: .relaxed) }
    func addFromUpstream(_ bytes: Int64) { fromUpstream.add(bytes, ordering: .relaxed) }

    /// As ``MemberInfo/traffic`` carries it.
    public var current: MemberInfo.Traffic {
        MemberInfo.Traffic(
            servedToDevices: served.load(ordering: .relaxed), fromPeers: fromPeers.load(ordering: .relaxed),
            fromUpstream: fromUpstream.load(ordering: .relaxed))
    }

    /// The totals saved at `path`: zero when there is no file; zero and a warning naming the
    /// file when it is not three non-negative counts (the next save replaces it).
    public static func load(path: String) -> (TrafficTotals, warning: String?) {
        guard let data = FileManager.default.contents(atPath: path) else { return (TrafficTotals(), nil) }
        guard let saved = try? JSONDecoder().decode(TrafficView.self, from: data),
            saved.servedToDevices >= 0, saved.fromPeers >= 0, saved.fromUpstream >= 0
        else {
            return (TrafficTotals(), "\(path): not the traffic totals this gateway saves (\(data.count) bytes); counting again from zero")
        }
        return (TrafficTotals(MemberInfo.Traffic(servedToDevices: saved.servedToDevices, fromPeers: saved.fromPeers, fromUpstream: saved.fromUpstream)), nil)
    }

    /// Writes the totals to `path` atomically (a crash leaves the old file or the new one).
    func save(path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(TrafficView(current)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// Saves the traffic totals every 30 s when they changed, and once more at a clean stop.
struct TrafficSaver: Service {
    let totals: TrafficTotals
    let path: String
    let logger: Logger

    func run() async throws {
        let saved = await cancelWhenGracefulShutdown {
            var saved = totals.current
            while true {
                do { try await Task.sleep(for: .seconds(30)) } catch { return saved }
                saved = save(unless: saved)
            }
        }
        _ = save(unless: saved)
    }

    /// Saves unless the totals are still `saved`; returns what the file now holds.
    func save(unless saved: MemberInfo.Traffic) -> MemberInfo.Traffic {
        let now = totals.current
        guard now != saved else { return saved }
        do {
            try totals.save(path: path)
            return now
        } catch {
            logger.warning("\(path): traffic totals not saved: \(error)")
            return saved
        }
    }
}
