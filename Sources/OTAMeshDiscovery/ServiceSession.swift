import CDNSSD
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A service this process announces (a device twin's `_http._tcp`, `_arduino._tcp`, …).
public struct ServiceAnnouncement: Sendable, Equatable {
    public var name: String
    public var type: String
    public var port: UInt16
    /// The TXT record as sent (length-prefixed strings).
    public var txtRecord: [UInt8]

    public init(name: String, type: String, port: UInt16, txt: [String: String] = [:]) {
        self.init(name: name, type: type, port: port, txtRecord: DiscoveryTXT.encode(pairs: txt))
    }

    public init(name: String, type: String, port: UInt16, txtRecord: [UInt8]) {
        self.name = name
        self.type = type
        self.port = port
        self.txtRecord = txtRecord
    }
}

/// A browsed and resolved service instance: its host name (`NAME.local`, resolve it with
/// ``AvahiHostResolver``), SRV port and TXT pairs (keys lowercased).
public struct ResolvedService: Sendable, Equatable {
    public var type: String
    public var name: String
    public var host: String
    public var port: UInt16
    /// The TXT record as received; ``txt`` decodes it.
    public var txtRecord: [UInt8]

    public init(type: String, name: String, host: String, port: UInt16, txtRecord: [UInt8]) {
        self.type = type
        self.name = name
        self.host = host
        self.port = port
        self.txtRecord = txtRecord
    }

    /// Keys (lowercased) to values (``DiscoveryTXT/decode(_:)``).
    public var txt: [String: String] { DiscoveryTXT.decode(txtRecord) }
}

/// Registrations and browses of any service types, with a resolve per browsed instance,
/// through Avahi's dns_sd compat library. Confined to the discovery thread: every DNSService*
/// call, and so every callback (they run inside `DNSServiceProcessResult`), happens there.
/// Reports each instance when resolved and again when its host, port or TXT change, and once
/// when the last browse "add" of it is withdrawn.
///
/// A session lives until the daemon goes away; ``ServiceLoop`` then closes it and opens a new one.
final class ServiceSession {
    /// Resolves open at once. Each is a D-Bus connection and a thread inside the compat library.
    static let maxResolvers = 16
    /// A failed resolve (timeout, lost packets) is tried again after this long.
    static let resolveRetry: Duration = .seconds(5)

    private let types: [String]
    private let announcements: [ServiceAnnouncement]
    /// nil: a resolve stays open and reports changes as they come (a handful of gateways);
    /// else it is closed once answered and made again after this long (hundreds of devices).
    private let refresh: Duration?
    private let logger: Logger
    private let onEvent: (ServiceDiscovery.Event) -> Void

    private var registrations: [DNSServiceRef] = []
    private var browsers: [DNSServiceRef] = []
    private var instances: [Key: Instance] = [:]
    private var failure: String?
    private var retired: [DNSServiceRef] = []
    private var retiredContexts: [Context] = []
    private var browseContexts: [Context] = []

    struct Key: Hashable {
        var type: String
        var name: String
    }

    /// What a callback's context pointer names.
    private final class Context {
        unowned let session: ServiceSession
        let key: Key
        init(session: ServiceSession, key: Key) {
            self.session = session
            self.key = key
        }
    }

    private struct Instance {
        var sightings = 0
        var resolver: DNSServiceRef?
        var context: Context?
        var resolveAt: ContinuousClock.Instant? = .now
        var reported: ResolvedService?
    }

    init(
        types: [String], announcements: [ServiceAnnouncement], refresh: Duration?, logger: Logger,
        onEvent: @escaping (ServiceDiscovery.Event) -> Void
    ) {
        self.types = types
        self.announcements = announcements
        self.refresh = refresh
        self.logger = logger
        self.onEvent = onEvent
    }

    /// Registers every announcement and browses every type; returns why it could not.
    func open() -> String? {
        for announcement in announcements {
            var ref: DNSServiceRef?
            let error = announcement.txtRecord.withUnsafeBytes { raw in
                DNSServiceRegister(
                    &ref, 0, 0, announcement.name, announcement.type, nil, nil, announcement.port.bigEndian,
                    UInt16(raw.count), raw.baseAddress,
                    { _, _, error, name, _, _, context in
                        guard let context else { return }
                        Unmanaged<ServiceSession>.fromOpaque(context).takeUnretainedValue()
                            .registered(error: error, name: name.map { String(cString: $0) })
                    }, Unmanaged.passUnretained(self).toOpaque())
            }
            guard error == DNSSDError.noError, let ref else { return "DNSServiceRegister \(announcement.type): \(DNSSDError.describe(error))" }
            registrations.append(ref)
        }
        for type in types {
            let context = Context(session: self, key: Key(type: type, name: ""))
            var ref: DNSServiceRef?
            let error = DNSServiceBrowse(
                &ref, 0, 0, type, "local.",
                { _, flags, _, error, name, _, _, context in
                    guard let context else { return }
                    let browse = Unmanaged<Context>.fromOpaque(context).takeUnretainedValue()
                    browse.session.browsed(type: browse.key.type, flags: flags, error: error, name: name.map { String(cString: $0) })
                }, Unmanaged.passUnretained(context).toOpaque())
            guard error == DNSSDError.noError, let ref else { return "DNSServiceBrowse \(type): \(DNSSDError.describe(error))" }
            browseContexts.append(context)
            browsers.append(ref)
        }
        return nil
    }

    /// Polls every ref and dispatches results until `stop` (nil) or the daemon is gone (why).
    func pump(until stop: StopSignal) -> String? {
        while failure == nil {
            if stop.isSignalled { return nil }
            startDueResolves()
            let permanent = registrations + browsers
            var refs: [DNSServiceRef] = []
            var fds: [pollfd] = []
            for ref in permanent + instances.values.compactMap(\.resolver) {
                let fd = DNSServiceRefSockFD(ref)
                guard fd >= 0 else {
                    if permanent.contains(ref) { return "DNSServiceRefSockFD returned \(fd)" }
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
                if entry.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                    lost(ref, "socket reported \(entry.revents & Int16(POLLHUP) != 0 ? "hang-up" : "an error")")
                } else {
                    let error = DNSServiceProcessResult(ref)
                    if error != DNSSDError.noError { lost(ref, "DNSServiceProcessResult: \(DNSSDError.describe(error))") }
                }
            }
            deallocateRetired()
        }
        return failure
    }

    func close() {
        for key in instances.keys { stopResolving(key) }
        instances.removeAll()
        deallocateRetired()
        for ref in browsers + registrations { DNSServiceRefDeallocate(ref) }
        browsers = []
        registrations = []
        browseContexts = []
    }

    private func registered(error: DNSServiceErrorType, name: String?) {
        guard error == DNSSDError.noError else {
            failure = "registration failed: \(DNSSDError.describe(error))"
            return
        }
        if let name { onEvent(.registered(name)) }
    }

    private func browsed(type: String, flags: DNSServiceFlags, error: DNSServiceErrorType, name: String?) {
        guard error == DNSSDError.noError else {
            failure = "browse \(type) failed: \(DNSSDError.describe(error))"
            return
        }
        guard let name else { return }
        let key = Key(type: type, name: name)
        if flags & DNSServiceFlags(kDNSServiceFlagsAdd) != 0 {
            var instance = instances[key] ?? Instance()
            instance.sightings += 1
            if instance.resolver == nil { instance.resolveAt = .now }
            instances[key] = instance
        } else if var instance = instances[key] {
            instance.sightings -= 1
            if instance.sightings <= 0 {
                logger.debug("mDNS: instance withdrawn", metadata: ["mdns.instance": "\(name)", "mdns.type": "\(type)"])
                stopResolving(key)
                instances[key] = nil
                if instance.reported != nil { onEvent(.removed(type: type, name: name)) }
            } else {
                instances[key] = instance
            }
        }
    }

    private func resolved(_ context: Context, error: DNSServiceErrorType, host: String, port: UInt16, txt: [UInt8]) {
        let key = context.key
        guard instances[key]?.context === context else { return }
        guard error == DNSSDError.noError, !host.isEmpty else {
            logger.debug("mDNS: resolve failed; retrying", metadata: ["mdns.instance": "\(key.name)", "error": "\(DNSSDError.describe(error))"])
            stopResolving(key)
            instances[key]?.resolveAt = .now + Self.resolveRetry
            return
        }
        if let refresh {
            stopResolving(key)
            instances[key]?.resolveAt = .now + refresh
        }
        guard var instance = instances[key] else { return }
        let service = ResolvedService(type: key.type, name: key.name, host: host, port: UInt16(bigEndian: port), txtRecord: txt)
        if instance.reported != service {
            instance.reported = service
            instances[key] = instance
            onEvent(.found(service))
        }
    }

    private func startDueResolves() {
        let now = ContinuousClock.now
        var running = instances.values.count(where: { $0.resolver != nil })
        for (key, instance) in instances where instance.resolver == nil {
            guard let due = instance.resolveAt, due <= now else { continue }
            guard running < Self.maxResolvers else {
                instances[key]?.resolveAt = now + .milliseconds(250)
                continue
            }
            let context = Context(session: self, key: key)
            var ref: DNSServiceRef?
            let error = DNSServiceResolve(
                &ref, 0, 0, key.name, key.type, "local.",
                { _, _, _, error, _, host, port, length, txt, context in
                    guard let context else { return }
                    let resolve = Unmanaged<Context>.fromOpaque(context).takeUnretainedValue()
                    let bytes = txt.map { Array(UnsafeBufferPointer(start: $0, count: Int(length))) } ?? []
                    resolve.session.resolved(resolve, error: error, host: host.map { String(cString: $0) } ?? "", port: port, txt: bytes)
                }, Unmanaged.passUnretained(context).toOpaque())
            guard error == DNSSDError.noError, let ref else {
                instances[key]?.resolveAt = now + Self.resolveRetry
                continue
            }
            instances[key]?.resolver = ref
            instances[key]?.context = context
            instances[key]?.resolveAt = nil
            running += 1
        }
    }

    private func stopResolving(_ key: Key) {
        guard let resolver = instances[key]?.resolver else { return }
        retired.append(resolver)
        if let context = instances[key]?.context { retiredContexts.append(context) }
        instances[key]?.resolver = nil
        instances[key]?.context = nil
    }

    private func deallocateRetired() {
        for ref in retired { DNSServiceRefDeallocate(ref) }
        retired.removeAll()
        retiredContexts.removeAll()
    }

    private func lost(_ ref: DNSServiceRef, _ reason: String) {
        if registrations.contains(ref) || browsers.contains(ref) {
            failure = reason
            return
        }
        if let (key, _) = instances.first(where: { $0.value.resolver == ref }) {
            logger.debug("mDNS: resolve lost; retrying", metadata: ["mdns.instance": "\(key.name)", "mdns.reason": "\(reason)"])
            stopResolving(key)
            instances[key]?.resolveAt = .now + Self.resolveRetry
        }
    }
}

/// Runs sessions on the calling thread until `stop`: open, pump, and while avahi-daemon is away
/// (absent, restarting) wait with a backoff of 1 s doubling to 30 s and reopen, logging one
/// warning per outage and one info line once it works (again).
struct ServiceLoop {
    var types: [String]
    var announcements: [ServiceAnnouncement]
    var refresh: Duration?
    var logger: Logger
    /// What the "available" log line says is advertised, if anything.
    var advertising: String?

    /// `handler` is asked for a fresh event handler per session: a session starts with no
    /// instance known, so everything found is reported anew.
    func run(until stop: StopSignal, handler: () -> (ServiceDiscovery.Event) -> Void) {
        // Avahi's compat library prints a warning to stderr on first use unless this is set.
        setenv("AVAHI_COMPAT_NOWARN", "1", 0)
        var availability = MDNSAvailability()
        var backoff = DiscoveryBackoff()
        while !stop.isSignalled {
            let session = ServiceSession(types: types, announcements: announcements, refresh: refresh, logger: logger, onEvent: handler())
            var failure = session.open()
            if failure == nil {
                backoff.reset()
                availability.succeeded(advertising: advertising, browsing: types.isEmpty ? "nothing" : types.joined(separator: ", ")).log(to: logger)
                failure = session.pump(until: stop)
            }
            session.close()
            guard let failure else { break }
            let delay = backoff.next()
            availability.failed(failure, retryIn: delay).log(to: logger)
            if stop.wait(for: delay) { break }
        }
        logger.debug("mDNS: stopped")
    }

    /// Runs the loop on a dedicated thread (never a Swift concurrency or NIO thread) until the
    /// calling task is cancelled; the C API polls with a 250 ms timeout, so that is noticed promptly.
    static func onThread(named name: String, _ body: @escaping @Sendable (StopSignal) -> Void) async {
        let stop = StopSignal()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                let thread = Thread {
                    body(stop)
                    finished.resume()
                }
                thread.name = name
                thread.start()
            }
        } onCancel: {
            stop.signal()
        }
    }
}

/// Browses (and announces) services of any types through avahi-daemon: push devices on device
/// segments, and device twins announcing themselves. Resolves are made again every
/// ``refresh`` (hundreds of instances cannot each keep one open).
public final class ServiceDiscovery: Sendable {
    public static let refresh: Duration = .seconds(300)

    private let types: [String]
    private let announcements: [ServiceAnnouncement]
    private let logger: Logger

    public enum Event: Sendable, Equatable {
        case found(ResolvedService)
        case removed(type: String, name: String)
        /// The daemon confirmed an announcement under this name (renamed on a conflict).
        case registered(String)
    }

    public init(types: [String], announcements: [ServiceAnnouncement] = [], logger: Logger) {
        self.types = types
        self.announcements = announcements
        self.logger = logger
    }

    /// Runs until the task is cancelled; then withdraws the announcements.
    public func run(onEvent: @escaping @Sendable (Event) -> Void) async {
        let loop = ServiceLoop(
            types: types, announcements: announcements, refresh: Self.refresh, logger: logger,
            advertising: announcements.isEmpty ? nil : "\(announcements.count) services")
        await ServiceLoop.onThread(named: "otamesh-mdns-services") { stop in loop.run(until: stop) { onEvent } }
    }
}
