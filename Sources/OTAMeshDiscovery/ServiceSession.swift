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
    public var txt: [String: String]

    public init(name: String, type: String, port: UInt16, txt: [String: String] = [:]) {
        self.name = name
        self.type = type
        self.port = port
        self.txt = txt
    }
}

/// A browsed and resolved service instance: its host name (`NAME.local`, resolve it with
/// ``AvahiHostResolver``), SRV port and TXT pairs (keys lowercased).
public struct ResolvedService: Sendable, Equatable {
    public var type: String
    public var name: String
    public var host: String
    public var port: UInt16
    public var txt: [String: String]

    public init(type: String, name: String, host: String, port: UInt16, txt: [String: String]) {
        self.type = type
        self.name = name
        self.host = host
        self.port = port
        self.txt = txt
    }
}

/// Registrations and browses of any service types, with a resolve per browsed instance,
/// through Avahi's dns_sd compat library; confined to one thread like ``DNSSDSession``. Reports
/// each instance when resolved and again when its host, port or TXT change, and once when the
/// last browse "add" of it is withdrawn.
final class ServiceSession {
    static let maxResolvers = 16
    static let resolveRetry: Duration = .seconds(5)

    enum Event {
        case found(ResolvedService)
        case removed(type: String, name: String)
    }

    private let types: [String]
    private let announcements: [ServiceAnnouncement]
    private let logger: Logger
    private let onEvent: (Event) -> Void

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

    init(types: [String], announcements: [ServiceAnnouncement], logger: Logger, onEvent: @escaping (Event) -> Void) {
        self.types = types
        self.announcements = announcements
        self.logger = logger
        self.onEvent = onEvent
    }

    /// Registers every announcement and browses every type; returns why it could not.
    func open() -> String? {
        for announcement in announcements {
            let txt = DiscoveryTXT.encode(pairs: announcement.txt)
            var ref: DNSServiceRef?
            let error = txt.withUnsafeBytes { raw in
                DNSServiceRegister(&ref, 0, 0, announcement.name, announcement.type, nil, nil, announcement.port.bigEndian,
                                   UInt16(raw.count), raw.baseAddress, { _, _, error, name, _, _, context in
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
            let error = DNSServiceBrowse(&ref, 0, 0, type, "local.", { _, flags, _, error, name, _, _, context in
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
        logger.debug("mDNS: announced", metadata: ["instance": "\(name ?? "?")"])
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
        guard var instance = instances[key], instance.context === context else { return }
        stopResolving(key)
        instance = instances[key] ?? instance
        guard error == DNSSDError.noError, !host.isEmpty else {
            instances[key]?.resolveAt = .now + Self.resolveRetry
            return
        }
        let service = ResolvedService(type: key.type, name: key.name, host: host, port: UInt16(bigEndian: port), txt: DiscoveryTXT.decode(txt))
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
            let error = DNSServiceResolve(&ref, 0, 0, key.name, key.type, "local.", { _, _, _, error, _, host, port, length, txt, context in
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
            stopResolving(key)
            instances[key]?.resolveAt = .now + Self.resolveRetry
        }
    }
}

/// Browses (and announces) services on a dedicated thread, reopening the session with a
/// backoff while avahi-daemon is away, like ``MDNSDiscovery``.
public final class ServiceDiscovery: Sendable {
    private let types: [String]
    private let announcements: [ServiceAnnouncement]
    private let logger: Logger

    public enum Event: Sendable, Equatable {
        case found(ResolvedService)
        case removed(type: String, name: String)
    }

    public init(types: [String], announcements: [ServiceAnnouncement] = [], logger: Logger) {
        self.types = types
        self.announcements = announcements
        self.logger = logger
    }

    /// Runs until the task is cancelled; then withdraws the announcements.
    public func run(onEvent: @escaping @Sendable (Event) -> Void) async {
        let stop = StopSignal()
        let (types, announcements, logger) = (types, announcements, logger)
        await withTaskCancellationHandler {
            await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                let thread = Thread {
                    setenv("AVAHI_COMPAT_NOWARN", "1", 0)
                    var availability = MDNSAvailability()
                    var backoff = DiscoveryBackoff()
                    while !stop.isSignalled {
                        let session = ServiceSession(types: types, announcements: announcements, logger: logger) { event in
                            switch event {
                            case .found(let service): onEvent(.found(service))
                            case .removed(let type, let name): onEvent(.removed(type: type, name: name))
                            }
                        }
                        var failure = session.open()
                        if failure == nil {
                            backoff.reset()
                            availability.succeeded(advertising: announcements.isEmpty ? nil : "\(announcements.count) services",
                                                   browsing: types.isEmpty ? "nothing" : types.joined(separator: ", ")).log(to: logger)
                            failure = session.pump(until: stop)
                        }
                        session.close()
                        guard let failure else { break }
                        let delay = backoff.next()
                        availability.failed(failure, retryIn: delay).log(to: logger)
                        if stop.wait(for: delay) { break }
                    }
                    finished.resume()
                }
                thread.name = "otamesh-mdns-services"
                thread.start()
            }
        } onCancel: {
            stop.signal()
        }
    }
}
