import OTAMeshRollout

/// One push to a device that only takes "fetch this URL" commands (family `fetch-url`), as a
/// pure state machine: the shell feeds it events (the command's answer, version probes, clock
/// ticks) with the time, and executes the actions it returns.
///
/// 1. The command (``FetchURLRequest``: method, path, body with the image's URL): connection
///    failures are retried under the retry-timeout policy (the device never saw the command).
/// 2. An accepted status (any 2xx unless the device's `accept` option says) = the device
///    started fetching; 401 is "authentication failed", any other status is
///    ``PushFailure/Kind/refused`` with the status and an excerpt of the body.
/// 3. Poll the version endpoint every ``Timing/pollInterval``. The image's version is success
///    (with an incompatible `variant`, when the device reports one: rebooted into the wrong
///    firmware). The old version after the device went away and came back, or still after the
///    reboot grace (``FetchURLRequest/rebootGrace``, else ``Timing/rebootGrace``), is
///    ``PushFailure/Kind/rebootedIntoOld`` — the gateway cannot tell a device that restarted
///    into its old firmware from one whose download failed, so the reason names both.
///    Unreachable for longer than ``Timing/unreachableLimit`` is a timeout; everything ends by
///    ``Timing/deadline``.
public struct FetchURLPush: Sendable {
    /// Timeouts and intervals, milliseconds (shared by the push families).
    public typealias Timing = PushTiming

    /// What the version endpoint said.
    public struct Reported: Sendable, Equatable {
        public var version: String
        public var variant: String?
        public init(version: String, variant: String? = nil) {
            self.version = version
            self.variant = variant
        }
    }

    public enum Event: Sendable, Equatable {
        case started
        /// The command answered with this status and body.
        case answered(status: Int, body: String)
        /// The command got no answer (connect refused, reset, timeout).
        case sendFailed(String)
        /// The version endpoint answered.
        case version(Reported)
        /// The version endpoint did not answer, or not with a version.
        case versionFailed(String)
        /// The time asked for with ``Action/wait(until:)`` has come.
        case tick
    }

    /// The command as sent: everything rendered, nothing secret.
    public struct Command: Sendable, Equatable {
        public var method: String
        public var path: String
        public var contentType: String
        /// Empty for GET.
        public var body: String

        public init(method: String, path: String, contentType: String, body: String) {
            self.method = method
            self.path = path
            self.contentType = contentType
            self.body = body
        }
    }

    public enum Action: Sendable, Equatable {
        case send(Command)
        case fetchVersion
        case wait(until: Int64)
        case progress(DeviceOutcome.Phase)
        case succeeded(version: String)
        case failed(PushFailure)
    }

    enum Stage: Sendable, Equatable {
        case idle
        case sending
        case confirming
        case done
    }

    public let image: PushImage
    public let target: PushTarget
    public let request: FetchURLRequest
    public let timing: Timing
    /// Whether the shell sends credentials (only the fact: the machine never holds them).
    public let authenticates: Bool
    let started: Int64
    let random: Double
    var stage = Stage.idle
    var attempts = 0
    var reported = Set<Int>()
    var acceptedAt: Int64 = 0
    var presence = DevicePresence.answering
    var lastVersion: String?

    /// `random` (uniform in [0, 1)) sets the retry backoff's jitter.
    public init(
        image: PushImage, target: PushTarget, request: FetchURLRequest, authenticates: Bool, timing: Timing = Timing(),
        now: Int64, random: Double = 0.5
    ) {
        self.image = image
        self.target = target
        self.request = request
        self.authenticates = authenticates
        self.timing = timing
        started = now
        self.random = random
    }

    /// The command for this image and device.
    public var command: Command {
        let values = FetchURLRequest.values(image: image, device: target)
        return Command(
            method: request.method, path: request.renderedPath(values), contentType: request.contentType,
            body: request.method == "GET" ? "" : request.renderedBody(values))
    }

    /// `METHOD /path` without its query (query strings may carry the URL; kept out of reasons).
    var what: String { "\(request.method) \(command.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? command.path)" }

    var rebootGrace: Int64 { request.rebootGrace ?? timing.rebootGrace }

    public mutating func handle(_ event: Event, now: Int64) -> [Action] {
        guard stage != .done else { return [] }
        if now - started > timing.deadline {
            let last = lastVersion.map { " (device last reported \($0))" } ?? ""
            return fail(.timeout, "no confirmed version within \(timing.deadline / 1000) s\(last)")
        }
        switch (stage, event) {
        case (.idle, .started):
            guard image.version != nil else {
                return fail(.refused, "image \(image.path) names no version; the push could not be confirmed")
            }
            guard let url = image.url, url.hasPrefix("http://") || url.hasPrefix("https://") else {
                return fail(.refused, "image \(image.path) has no http:// or https:// URL the device could fetch")
            }
            stage = .sending
            return [.send(command)]
        case (.sending, .tick):
            return [.send(command)]
        case (.sending, .sendFailed(let reason)):
            return sendFailed(reason, now: now)
        case (.sending, .answered(let status, let body)):
            return answered(status: status, body: body, now: now)
        case (.confirming, .tick):
            return [.fetchVersion]
        case (.confirming, .version(let reported)):
            return confirm(reported, now: now)
        case (.confirming, .versionFailed(let reason)):
            return unreachable(reason, now: now)
        default:
            return []
        }
    }

    private mutating func fail(_ kind: PushFailure.Kind, _ reason: String) -> [Action] {
        stage = .done
        return [.failed(PushFailure(kind, reason))]
    }

    private mutating func report(_ phase: DeviceOutcome.Phase) -> [Action] {
        reported.insert(phase.rawValue).inserted ? [.progress(phase)] : []
    }

    private mutating func sendFailed(_ reason: String, now: Int64) -> [Action] {
        attempts += 1
        switch timing.networkRetry(reason, attempt: attempts, started: started, now: now, random: random) {
        case .success(let until): return [.wait(until: until)]
        case .failure(let exhausted): return fail(.network, "device unreachable for \(what): \(exhausted.reason)")
        }
    }

    private mutating func answered(status: Int, body: String, now: Int64) -> [Action] {
        let said = HTTPUploadPush.text(body)
        let saidSuffix = said.isEmpty ? "" : ": \(said)"
        if request.accepts(status) {
            stage = .confirming
            acceptedAt = now
            return report(.downloading) + [.wait(until: now + timing.pollInterval)]
        }
        if status == 401 {
            let why = authenticates ? "the device rejected the configured user and password" : "the device wants a user and password and none is configured"
            return fail(.refused, "authentication failed (HTTP 401 from \(what)): \(why)")
        }
        let expected = request.acceptText.map { " (accepted: \($0))" } ?? ""
        return fail(.refused, "HTTP \(status) from \(what)\(expected)\(saidSuffix)")
    }

    private mutating func confirm(_ reported: Reported, now: Int64) -> [Action] {
        let wasDown = presence.answered()
        lastVersion = reported.version
        let expected = image.version ?? "?"
        if reported.version == image.version {
            if let variant = reported.variant, let imageVariant = image.variant, !ProjectMMVariant.compatible(variant, imageVariant) {
                return fail(
                    .rebootedIntoOld, "device came back running \(reported.version) as variant \(variant), not compatible with image variant \(imageVariant)")
            }
            stage = .done
            return report(.downloading) + report(.installing) + [.succeeded(version: reported.version)]
        }
        let before = target.version.map { " (it ran \($0) before)" } ?? ""
        if wasDown {
            return fail(.rebootedIntoOld, "device rebooted and reports \(reported.version), not \(expected)\(before)")
        }
        // The HTTP client retries a refused connect, so a short restart may pass unseen: the old
        // version still after the grace is judged like a seen reboot (as for HTTP upload).
        if now - acceptedAt > rebootGrace {
            return fail(
                .rebootedIntoOld,
                "device still reports \(reported.version), not \(expected), \(rebootGrace / 1000) s after it took the command "
                    + "(it rebooted into its old firmware, or its download of the image failed)\(before)")
        }
        return [.wait(until: now + timing.pollInterval)]
    }

    private mutating func unreachable(_ reason: String, now: Int64) -> [Action] {
        // Gone away after taking the command: it has the image and restarts.
        let actions = report(.installing)
        guard presence.missed(now: now) <= timing.unreachableLimit else {
            return fail(.timeout, "device did not answer a version within \(timing.unreachableLimit / 1000) s of going away: \(reason)")
        }
        return actions + [.wait(until: now + timing.pollInterval)]
    }
}
