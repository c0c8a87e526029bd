import Foundation
import Logging

/// Finds this site's gateways on the LAN with mDNS/DNS-SD through avahi-daemon (Avahi's
/// dns_sd compat library), and advertises this one.
///
/// The C API is driven on a dedicated thread (never a Swift concurrency or NIO thread): it
/// polls the refs' sockets with a 250 ms timeout, so cancellation is noticed promptly.
public final class MDNSDiscovery: Sendable {
    public static let serviceType = "_otamesh._tcp"

    private let advert: DiscoveryAdvert
    private let logger: Logger

    public init(advert: DiscoveryAdvert, logger: Logger) {
        self.advert = advert
        self.logger = logger
    }

    /// Registers the advert, browses and resolves `_otamesh._tcp`, and calls `onPeer` (on the
    /// discovery thread) for every peer of the same site: when first seen and whenever its
    /// advert changes. Other sites and this node are ignored (debug log). Runs until the task
    /// is cancelled, then withdraws the advert.
    ///
    /// Without avahi-daemon (absent, restarting) it logs one warning per outage, retries with
    /// a backoff of 1 s doubling to 30 s, and logs at info level once it works again.
    public func run(onPeer: @escaping @Sendable (DiscoveredPeer) -> Void) async {
        let advert = advert
        let logger = logger
        if let problem = advert.problem {
            logger.error("mDNS: not advertising this node (browsing only): \(problem)")
        }
        let announcements =
            advert.problem == nil
            ? [ServiceAnnouncement(name: advert.instanceName, type: Self.serviceType, port: advert.gossipPort, txtRecord: DiscoveryTXT.encode(advert))]
            : []
        // Resolves stay open: a handful of gateways, each reported again when its advert changes.
        let loop = ServiceLoop(
            types: [Self.serviceType], announcements: announcements, refresh: nil, logger: logger,
            advertising: advert.problem == nil ? advert.instanceName : nil)
        await ServiceLoop.onThread(named: "otamesh-mdns") { stop in
            loop.run(until: stop) { PeerFilter(advert: advert, logger: logger, onPeer: onPeer).handle }
        }
    }
}

/// Turns browse events of `_otamesh._tcp` into peers of this site: decodes each instance's TXT,
/// admits it (``DiscoveryAdvert/admit(_:)``), reports each peer once and again when it changes,
/// and logs renames and rejections once each. Confined to the discovery thread.
final class PeerFilter {
    private let advert: DiscoveryAdvert
    private let logger: Logger
    private let onPeer: @Sendable (DiscoveredPeer) -> Void
    /// The instance name the daemon confirmed (it renames on a conflict).
    private var registeredName: String?
    private var reported: [String: DiscoveredPeer] = [:]
    private var rejections: [String: DiscoveryRejection] = [:]

    init(advert: DiscoveryAdvert, logger: Logger, onPeer: @escaping @Sendable (DiscoveredPeer) -> Void) {
        self.advert = advert
        self.logger = logger
        self.onPeer = onPeer
    }

    func handle(_ event: ServiceDiscovery.Event) {
        switch event {
        case .registered(let name):
            guard name != registeredName else { return }
            registeredName = name
            if name == advert.instanceName {
                logger.debug("mDNS: registration confirmed", metadata: ["mdns.instance": "\(name)", "mdns.type": "\(MDNSDiscovery.serviceType)"])
            } else {
                logger.warning(
                    "mDNS: another host advertises our instance name; the daemon renamed ours",
                    metadata: ["mdns.wanted": "\(advert.instanceName)", "mdns.instance": "\(name)"])
            }
        case .removed(_, let name):
            reported[name] = nil
            rejections[name] = nil
        case .found(let service):
            let name = service.name
            let decoded = DiscoveryTXT.peer(instance: name, txt: service.txtRecord, resolvedPort: service.port, hostAddresses: [])
            switch decoded.flatMap(advert.admit) {
            case .success(let peer):
                rejections[name] = nil
                guard reported[name] != peer else { return }
                reported[name] = peer
                logger.info(
                    "mDNS: discovered peer",
                    metadata: [
                        "peer.name": "\(peer.nodeName)", "peer.addresses": "\(peer.addresses.joined(separator: ","))",
                        "peer.gossipPort": "\(peer.gossipPort)", "peer.httpPort": "\(peer.httpPort)",
                    ])
                onPeer(peer)
            case .failure(.ownName) where name != (registeredName ?? advert.instanceName):
                if rejections[name] != .ownName {
                    logger.warning(
                        "mDNS: another gateway advertises this node's name; node names must be unique",
                        metadata: ["mdns.instance": "\(name)", "node.name": "\(advert.nodeName)"])
                }
                rejections[name] = .ownName
            case .failure(let rejection):
                if rejections[name] != rejection {
                    logger.debug("mDNS: ignoring instance", metadata: ["mdns.instance": "\(name)", "mdns.reason": "\(rejection)"])
                }
                rejections[name] = rejection
            }
        }
    }
}

/// What to log as avahi-daemon comes and goes: one warning per outage, one info line when
/// discovery works (again), debug lines for the retries in between.
struct MDNSAvailability: Sendable {
    enum State: Sendable, Equatable { case starting, available, unavailable }

    struct Line: Sendable, Equatable {
        var level: Logger.Level
        var message: String

        func log(to logger: Logger) { logger.log(level: level, "\(message)") }
    }

    private(set) var state = State.starting

    mutating func failed(_ reason: String, retryIn delay: Duration) -> Line {
        defer { state = .unavailable }
        if state == .unavailable {
            return Line(level: .debug, message: "mDNS still unavailable: \(reason); next try in \(delay.seconds) s")
        }
        return Line(
            level: .warning,
            message: "mDNS unavailable: \(reason); retrying every "
                + "\(DiscoveryBackoff.initial.seconds) s doubling to \(DiscoveryBackoff.maximum.seconds) s, static join addresses still work")
    }

    mutating func succeeded(advertising instance: String?, browsing types: String = MDNSDiscovery.serviceType) -> Line {
        defer { state = .available }
        let what = instance.map { "advertising \"\($0)\" and browsing \(types)" } ?? "browsing \(types)"
        return Line(level: .info, message: state == .unavailable ? "mDNS available again: \(what)" : "mDNS: \(what)")
    }
}

/// Retry delays while the daemon is unreachable: 1, 2, 4, … s, capped at 30 s.
struct DiscoveryBackoff: Sendable, Equatable {
    static let initial: Duration = .seconds(1)
    static let maximum: Duration = .seconds(30)

    private var upcoming = initial

    mutating func next() -> Duration {
        defer { upcoming = min(upcoming * 2, Self.maximum) }
        return upcoming
    }

    mutating func reset() { upcoming = Self.initial }
}

extension Duration {
    /// Whole seconds, for log lines.
    fileprivate var seconds: Int64 { components.seconds }
}

/// Tells the discovery thread to stop, and lets it wait for that with a deadline.
final class StopSignal: @unchecked Sendable {
    // @unchecked: `signalled` is only touched with `condition` locked.
    private let condition = NSCondition()
    private var signalled = false

    func signal() {
        condition.lock()
        signalled = true
        condition.broadcast()
        condition.unlock()
    }

    var isSignalled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return signalled
    }

    /// Waits up to `duration`; true if the signal came.
    func wait(for duration: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
        condition.lock()
        defer { condition.unlock() }
        while !signalled, condition.wait(until: deadline) {}
        return signalled
    }
}
