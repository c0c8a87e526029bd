import CDNSSD
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// One registration and one browse of `_otamesh._tcp`, with a resolve per browsed instance,
/// through Avahi's dns_sd compat library. Confined to the discovery thread: every DNSService*
/// call, and so every callback (they run inside `DNSServiceProcessResult`), happens there.
///
/// A session lives until the daemon goes away; ``MDNSDiscovery`` then closes it and opens a
/// new one. It reports each peer once, and again when its advert changes.
final class DNSSDSession {
    /// Resolves kept open at once. Each is a D-Bus connection and a thread inside the compat
    /// library; gossip spreads membership, so a handful of discovered peers is plenty.
    static let maxResolvers = 16
    /// A failed resolve (timeout, lost packets) is tried again after this long.
    static let resolveRetry: Duration = .seconds(5)

    private let advert: DiscoveryAdvert
    private let logger: Logger
    private let onPeer: @Sendable (DiscoveredPeer) -> Void

    private var registration: DNSServiceRef?
    private var browser: DNSServiceRef?
    /// The instance name the daemon confirmed (it renames on a conflict).
    private var registeredName: String?
    private var instances: [String: Instance] = [:]
    /// Set by a callback when the daemon is gone; ends `pump`.
    private var failure: String?
    /// Refs to deallocate once the current `DNSServiceProcessResult` has returned, with the
    /// contexts their callbacks point at (kept alive until then).
    private var retired: [DNSServiceRef] = []
    private var retiredContexts: [ResolveContext] = []

    /// What the context pointer of a resolve names (retained by its `Instance`).
    private final class ResolveContext {
        unowned let session: DNSSDSession
        let instance: String
        init(session: DNSSDSession, instance: String) {
            self.session = session
            self.instance = instance
        }
    }

    private struct Instance {
        /// Browse "add" events minus "remove" events: one per interface and IP protocol.
        var sightings = 0
        var resolver: DNSServiceRef?
        var context: ResolveContext?
        /// When to start a resolve; nil while one runs.
        var resolveAt: ContinuousClock.Instant? = .now
        var reported: DiscoveredPeer?
        var rejection: DiscoveryRejection?
    }

    init(advert: DiscoveryAdvert, logger: Logger, onPeer: @escaping @Sendable (DiscoveredPeer) -> Void) {
        self.advert = advert
        self.logger = logger
        self.onPeer = onPeer
    }

    /// Registers (unless the advert has a problem, which the caller logged) and browses.
    /// Returns why it could not, e.g. `kDNSServiceErr_Unknown` when no daemon answers.
    func open() -> String? {
        let context = Unmanaged.passUnretained(self).toOpaque()
        if advert.problem == nil {
            let txt = DiscoveryTXT.encode(advert)
            var ref: DNSServiceRef?
            let error = txt.withUnsafeBytes { raw in
                DNSServiceRegister(&ref, 0, 0, advert.instanceName, MDNSDiscovery.serviceType, nil, nil,
                                   advert.gossipPort.bigEndian, UInt16(raw.count), raw.baseAddress,
                                   { _, _, error, name, _, _, context in
                                       guard let context else { return }
                                       Unmanaged<DNSSDSession>.fromOpaque(context).takeUnretainedValue()
                                           .registered(error: error, name: name.map { String(cString: $0) })
                                   }, context)
            }
            guard error == DNSSDError.noError, let ref else { return "DNSServiceRegister: \(DNSSDError.describe(error))" }
            registration = ref
        }
        var ref: DNSServiceRef?
        let error = DNSServiceBrowse(&ref, 0, 0, MDNSDiscovery.serviceType, "local.", { _, flags, _, error, name, _, _, context in
            guard let context else { return }
            Unmanaged<DNSSDSession>.fromOpaque(context).takeUnretainedValue()
                .browsed(flags: flags, error: error, name: name.map { String(cString: $0) })
        }, context)
        guard error == DNSSDError.noError, let ref else { return "DNSServiceBrowse: \(DNSSDError.describe(error))" }
        browser = ref
        return nil
    }

    /// Polls every ref's socket and dispatches results until `stop` is signalled (returns nil)
    /// or the daemon is gone (returns why).
    func pump(until stop: StopSignal) -> String? {
        while failure == nil {
            if stop.isSignalled { return nil }
            startDueResolves()
            var refs: [DNSServiceRef] = []
            var fds: [pollfd] = []
            for ref in [registration, browser].compactMap({ $0 }) + instances.values.compactMap(\.resolver) {
                let fd = DNSServiceRefSockFD(ref)
                guard fd >= 0 else {
                    if ref == registration || ref == browser { return "DNSServiceRefSockFD returned \(fd)" }
                    continue
                }
                refs.append(ref)
                fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
            }
            let ready = poll(&fds, nfds_t(fds.count), 250)
            if ready < 0 {
                if errno == EINTR { continue }
                return "poll: \(String(cString: strerror(errno)))"
            }
            for (ref, entry) in zip(refs, fds) where entry.revents != 0 && failure == nil && !retired.contains(ref) {
                let result: String?
                if entry.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                    result = "socket reported \(entry.revents & Int16(POLLHUP) != 0 ? "hang-up" : "an error")"
                } else {
                    let error = DNSServiceProcessResult(ref)
                    result = error == DNSSDError.noError ? nil : "DNSServiceProcessResult: \(DNSSDError.describe(error))"
                }
                if let result { lost(ref, result) }
            }
            deallocateRetired()
        }
        return failure
    }

    /// Deallocates every ref: withdraws the advert, stops browsing and resolving.
    func close() {
        for name in instances.keys { stopResolving(name) }
        instances.removeAll()
        deallocateRetired()
        if let browser { DNSServiceRefDeallocate(browser) }
        if let registration { DNSServiceRefDeallocate(registration) }
        browser = nil
        registration = nil
    }

    // MARK: - Callbacks (inside DNSServiceProcessResult)

    private func registered(error: DNSServiceErrorType, name: String?) {
        guard error == DNSSDError.noError else {
            failure = "registration failed: \(DNSSDError.describe(error))"
            return
        }
        guard let name, name != registeredName else { return }
        registeredName = name
        if name == advert.instanceName {
            logger.debug("mDNS: registration confirmed", metadata: ["instance": "\(name)", "type": "\(MDNSDiscovery.serviceType)"])
        } else {
            logger.warning("mDNS: another host advertises our instance name; the daemon renamed ours",
                           metadata: ["wanted": "\(advert.instanceName)", "instance": "\(name)"])
        }
    }

    private func browsed(flags: DNSServiceFlags, error: DNSServiceErrorType, name: String?) {
        guard error == DNSSDError.noError else {
            failure = "browse failed: \(DNSSDError.describe(error))"
            return
        }
        guard let name else { return }
        if flags & DNSServiceFlags(kDNSServiceFlagsAdd) != 0 {
            instances[name, default: Instance()].sightings += 1
        } else if var instance = instances[name] {
            instance.sightings -= 1
            if instance.sightings > 0 {
                instances[name] = instance
            } else {
                logger.debug("mDNS: instance withdrawn", metadata: ["instance": "\(name)"])
                stopResolving(name)
                instances[name] = nil
            }
        }
    }

    private func resolved(_ context: ResolveContext, error: DNSServiceErrorType, port: UInt16, txt: [UInt8]) {
        let name = context.instance
        // Only the instance's current resolve counts (not one retired in this round).
        guard var instance = instances[name], instance.context === context else { return }
        guard error == DNSSDError.noError else {
            logger.debug("mDNS: resolve failed; retrying", metadata: ["instance": "\(name)", "error": "\(DNSSDError.describe(error))"])
            stopResolving(name)
            instances[name]?.resolveAt = .now + Self.resolveRetry
            return
        }
        let decoded = DiscoveryTXT.peer(instance: name, txt: txt, resolvedPort: UInt16(bigEndian: port), hostAddresses: [])
        switch decoded.flatMap(advert.admit) {
        case .success(let peer):
            instance.rejection = nil
            if instance.reported != peer {
                instance.reported = peer
                logger.info("mDNS: discovered peer", metadata: [
                    "peer": "\(peer.nodeName)", "addresses": "\(peer.addresses.joined(separator: ","))",
                    "gossip_port": "\(peer.gossipPort)", "http_port": "\(peer.httpPort)",
                ])
                instances[name] = instance
                onPeer(peer)
                return
            }
        case .failure(.ownName) where name != (registeredName ?? advert.instanceName):
            if instance.rejection != .ownName {
                logger.warning("mDNS: another gateway advertises this node's name; node names must be unique",
                               metadata: ["instance": "\(name)", "node": "\(advert.nodeName)"])
            }
            instance.rejection = .ownName
        case .failure(let rejection):
            if instance.rejection != rejection {
                logger.debug("mDNS: ignoring instance", metadata: ["instance": "\(name)", "reason": "\(rejection)"])
            }
            instance.rejection = rejection
        }
        instances[name] = instance
    }

    // MARK: - Resolves

    private func startDueResolves() {
        let now = ContinuousClock.now
        var running = instances.values.count(where: { $0.resolver != nil })
        for (name, instance) in instances where instance.resolver == nil {
            guard let due = instance.resolveAt, due <= now else { continue }
            guard running < Self.maxResolvers else {
                instances[name]?.resolveAt = now + Self.resolveRetry
                continue
            }
            let context = ResolveContext(session: self, instance: name)
            var ref: DNSServiceRef?
            let error = DNSServiceResolve(&ref, 0, 0, name, MDNSDiscovery.serviceType, "local.", { _, _, _, error, _, _, port, length, txt, context in
                guard let context else { return }
                let resolve = Unmanaged<ResolveContext>.fromOpaque(context).takeUnretainedValue()
                let bytes = txt.map { Array(UnsafeBufferPointer(start: $0, count: Int(length))) } ?? []
                resolve.session.resolved(resolve, error: error, port: port, txt: bytes)
            }, Unmanaged.passUnretained(context).toOpaque())
            guard error == DNSSDError.noError, let ref else {
                logger.debug("mDNS: could not start resolve", metadata: ["instance": "\(name)", "error": "\(DNSSDError.describe(error))"])
                instances[name]?.resolveAt = now + Self.resolveRetry
                continue
            }
            instances[name]?.resolver = ref
            instances[name]?.context = context
            instances[name]?.resolveAt = nil
            running += 1
        }
    }

    /// Retires the instance's resolve; its context stays alive until the ref is deallocated.
    private func stopResolving(_ name: String) {
        guard let resolver = instances[name]?.resolver else { return }
        retired.append(resolver)
        if let context = instances[name]?.context { retiredContexts.append(context) }
        instances[name]?.resolver = nil
        instances[name]?.context = nil
    }

    private func deallocateRetired() {
        for ref in retired { DNSServiceRefDeallocate(ref) }
        retired.removeAll()
        retiredContexts.removeAll()
    }

    /// A ref's socket failed or its result could not be processed.
    private func lost(_ ref: DNSServiceRef, _ reason: String) {
        if ref == registration || ref == browser {
            failure = reason
        } else if let name = instances.first(where: { $0.value.resolver == ref })?.key {
            logger.debug("mDNS: resolve lost; retrying", metadata: ["instance": "\(name)", "reason": "\(reason)"])
            stopResolving(name)
            instances[name]?.resolveAt = .now + Self.resolveRetry
        }
    }
}

/// Names for dns_sd error codes in log lines.
enum DNSSDError {
    static let noError = DNSServiceErrorType(kDNSServiceErr_NoError)

    static func describe(_ error: DNSServiceErrorType) -> String {
        let names: [Int: String] = [
            kDNSServiceErr_Unknown: "kDNSServiceErr_Unknown (no daemon or connection lost)",
            kDNSServiceErr_NoSuchName: "kDNSServiceErr_NoSuchName", kDNSServiceErr_NoMemory: "kDNSServiceErr_NoMemory",
            kDNSServiceErr_BadParam: "kDNSServiceErr_BadParam", kDNSServiceErr_BadReference: "kDNSServiceErr_BadReference",
            kDNSServiceErr_BadState: "kDNSServiceErr_BadState", kDNSServiceErr_BadFlags: "kDNSServiceErr_BadFlags",
            kDNSServiceErr_Unsupported: "kDNSServiceErr_Unsupported", kDNSServiceErr_NotInitialized: "kDNSServiceErr_NotInitialized",
            kDNSServiceErr_NameConflict: "kDNSServiceErr_NameConflict", kDNSServiceErr_Invalid: "kDNSServiceErr_Invalid",
            kDNSServiceErr_Incompatible: "kDNSServiceErr_Incompatible", kDNSServiceErr_Refused: "kDNSServiceErr_Refused",
        ]
        return names[Int(error)] ?? "dns_sd error \(error)"
    }
}
