import OTAMeshCommon
import OTAMeshRollout

/// One push to a projectMM device, as a pure state machine: the shell feeds it events (HTTP
/// answers, failed connections, clock ticks) with the time, and executes the actions it returns.
///
/// 1. `GET /api/state` first: the device's variant must be compatible with the image's
///    (``ProjectMMVariant``) before anything is sent; a device already running the version is done.
/// 2. `POST /api/firmware/url` `{"url": …}`: 202 = the device started; 400 / 500 / 501 and
///    anything else are refusals.
/// 3. Poll `/api/state` every ``Timing/pollInterval``: phases starting → downloading → flashing
///    (bytes / total) → rebooting; `error: …` fails. The device is unreachable while it reboots.
///    While bytes flow, the next poll comes when the device's rate says the transfer should be
///    done, if that is sooner (at most one poll per tenth of the interval): the push limits free
///    a device's slot once its image has crossed, so a late poll would leave the segment idle.
/// 4. When it answers again: the image's version (and a compatible variant) is success; the old
///    one is ``PushFailure/Kind/rebootedIntoOld``, or ``PushFailure/Kind/network`` when it went
///    away before it had the whole image (it died mid-transfer; a retry may work).
///
/// Connection failures before the device accepted (probe, POST) are retried under the
/// retry-timeout policy; later ones count against ``Timing/unreachableLimit``. Everything ends
/// by ``Timing/deadline``.
public struct ProjectMMPush: Sendable {
    /// Timeouts and intervals, milliseconds (shared by the push families).
    public typealias Timing = PushTiming

    public enum Event: Sendable, Equatable {
        case started
        /// `GET /api/state` answered and was read.
        case status(ProjectMMStatus)
        /// `GET /api/state` did not answer (connect refused, reset, timeout) or not with a state.
        case statusFailed(String)
        /// `POST /api/firmware/url` answered with this status and body.
        case posted(status: Int, body: String)
        case postFailed(String)
        /// The time asked for with ``Action/wait(until:)`` has come.
        case tick
    }

    public enum Action: Sendable, Equatable {
        case fetchStatus
        case post(body: String)
        case wait(until: Int64)
        case progress(DeviceOutcome.Phase)
        case succeeded(version: String)
        case failed(PushFailure)
    }

    enum Stage: Sendable, Equatable {
        case idle
        case probing
        case posting
        case following
        case done
    }

    public let image: PushImage
    public let target: PushTarget
    public let timing: Timing
    let started: Int64
    let random: Double
    var stage = Stage.idle
    /// Failed connection attempts of the current stage (probe or POST).
    var attempts = 0
    var oldVersion: String?
    var reported = Set<Int>()
    var lastStatus: ProjectMMStatus?
    var sawRebooting = false
    var presence = DevicePresence.answering
    /// When the device accepted, and when it last reported transfer bytes (how many).
    var acceptedAt: Int64 = 0
    var progressMark: (at: Int64, bytes: Int64)?

    /// `random` (uniform in [0, 1)) sets the retry backoff's jitter.
    public init(image: PushImage, target: PushTarget, timing: Timing = Timing(), now: Int64, random: Double = 0.5) {
        self.image = image
        self.target = target
        self.timing = timing
        started = now
        self.random = random
    }

    /// The JSON body of the POST.
    static func body(url: String) -> String { "{\"url\":\(jsonQuoted(url))}" }

    public mutating func handle(_ event: Event, now: Int64) -> [Action] {
        guard stage != .done else { return [] }
        if now - started > timing.deadline {
            let last = lastStatus.map { " (last phase: \($0.phase))" } ?? ""
            return fail(.timeout, "no confirmed version within \(timing.deadline / 1000) s\(last)")
        }
        switch (stage, event) {
        case (.idle, .started):
            stage = .probing
            return [.fetchStatus]
        case (.probing, .tick):
            return [.fetchStatus]
        case (.probing, .statusFailed(let reason)):
            return retry(reason, what: "device unreachable", now: now)
        case (.probing, .status(let status)):
            return probed(status)
        case (.posting, .tick):
            return [.post(body: Self.body(url: image.url ?? ""))]
        case (.posting, .postFailed(let reason)):
            return retry(reason, what: "POST /api/firmware/url failed", now: now)
        case (.posting, .posted(let status, let body)):
            return posted(status: status, body: body, now: now)
        case (.following, .tick):
            return [.fetchStatus]
        case (.following, .status(let status)):
            return follow(status, now: now)
        case (.following, .statusFailed(let reason)):
            return unreachable(reason, now: now)
        default:
            return []
        }
    }

    private mutating func fail(_ kind: PushFailure.Kind, _ reason: String) -> [Action] {
        stage = .done
        return [.failed(PushFailure(kind, reason))]
    }

    private mutating func retry(_ reason: String, what: String, now: Int64) -> [Action] {
        attempts += 1
        switch timing.networkRetry(reason, attempt: attempts, started: started, now: now, random: random) {
        case .success(let until): return [.wait(until: until)]
        case .failure(let exhausted): return fail(.network, "\(what): \(exhausted.reason)")
        }
    }

    private mutating func probed(_ status: ProjectMMStatus) -> [Action] {
        lastStatus = status
        guard let imageVariant = image.variant else {
            return fail(.refused, "image \(image.path) names no firmware variant; projectMM needs one to check compatibility")
        }
        guard let deviceVariant = status.firmware ?? target.variant else {
            return fail(.refused, "device reports no firmware variant; cannot check it against image variant \(imageVariant)")
        }
        guard ProjectMMVariant.compatible(deviceVariant, imageVariant) else {
            return fail(.refused, "variant \(deviceVariant) is not compatible with image variant \(imageVariant) (strip -eth, then equal)")
        }
        guard let url = image.url, url.hasPrefix("http://") || url.hasPrefix("https://") else {
            return fail(.refused, "image \(image.path) has no http:// or https:// URL the device could fetch")
        }
        switch status.phase {
        case .starting, .downloading, .flashing, .rebooting:
            return fail(.refused, "device is busy with another update (phase \(status.phase))")
        case .idle, .error, .other:
            break
        }
        if let version = image.version, status.version == version {
            stage = .done
            return [.succeeded(version: version)]
        }
        oldVersion = status.version
        stage = .posting
        attempts = 0
        return [.post(body: Self.body(url: url))]
    }

    private mutating func posted(status: Int, body: String, now: Int64) -> [Action] {
        let said = body.isEmpty ? "" : ": \(body.prefix(200))"
        switch status {
        case 202:
            stage = .following
            acceptedAt = now
            return [.wait(until: now + timing.pollInterval)]
        case 400:
            return fail(.refused, "HTTP 400 from POST /api/firmware/url: the device took the URL as missing or not http(s)\(said)")
        case 500:
            return fail(.refused, "HTTP 500 from POST /api/firmware/url: the device could not start its update task (out of memory)\(said)")
        case 501:
            return fail(.refused, "HTTP 501 from POST /api/firmware/url: this projectMM platform has no OTA\(said)")
        default:
            return fail(.refused, "HTTP \(status) from POST /api/firmware/url (expected 202)\(said)")
        }
    }

    private mutating func report(_ phase: DeviceOutcome.Phase) -> [Action] {
        reported.insert(phase.rawValue).inserted ? [.progress(phase)] : []
    }

    private var progressText: String {
        guard let last = lastStatus else { return "" }
        return last.total > 0 ? " at \(last.bytes) of \(last.total) bytes" : ""
    }

    private mutating func follow(_ status: ProjectMMStatus, now: Int64) -> [Action] {
        let wasDown = presence.answered()
        var actions: [Action] = []
        switch status.phase {
        case .error(let reason):
            lastStatus = status
            // The device's download failed: its link (begin / perform) or the image itself.
            let network = reason.hasPrefix("ota begin") || reason.hasPrefix("ota perform")
            return fail(network ? .network : .refused, "device reported error: \(reason)")
        case .starting, .other:
            break
        case .downloading, .flashing:
            if status.bytes > 0 || status.phase == .flashing { actions += report(.downloading) }
            if status.total > 0, status.bytes >= status.total { actions += report(.installing) }
            if status.total > status.bytes, status.bytes > 0 {
                let (since, from) = progressMark ?? (acceptedAt, 0)
                progressMark = (now, status.bytes)
                if now > since, status.bytes > from {
                    // Bytes per millisecond since the last mark; the rest at that rate, plus a margin.
                    let rate = Double(status.bytes - from) / Double(now - since)
                    let rest = Double(status.total - status.bytes) / rate
                    let wait = min(Double(timing.pollInterval), max(Double(timing.pollInterval / 10), rest + Double(timing.pollInterval / 20)))
                    lastStatus = status
                    return actions + [.wait(until: now + Int64(wait))]
                }
            }
        case .rebooting:
            sawRebooting = true
            actions += report(.downloading)
            actions += report(.installing)
        case .idle:
            let previous = lastStatus
            lastStatus = status
            return actions + finished(status, previous: previous, wasDown: wasDown)
        }
        lastStatus = status
        return actions + [.wait(until: now + timing.pollInterval)]
    }

    /// The device is idle again after it accepted: judge the version and variant it reports.
    private mutating func finished(_ status: ProjectMMStatus, previous: ProjectMMStatus?, wasDown: Bool) -> [Action] {
        let running = status.version ?? "no version"
        let expected = image.version ?? "?"
        if let version = status.version, version == image.version {
            if let firmware = status.firmware, let imageVariant = image.variant, !ProjectMMVariant.compatible(firmware, imageVariant) {
                return fail(.rebootedIntoOld, "device came back running \(version) as variant \(firmware), not compatible with image variant \(imageVariant)")
            }
            stage = .done
            return report(.downloading) + report(.installing) + [.succeeded(version: version)]
        }
        // Only a device that had the whole image (or said it was rebooting) rebooted into the
        // old firmware; one idle again before that lost power or restarted mid-transfer (the
        // firmware itself never goes back to idle from a download: errors stay in the status).
        // The poll may not see the restart itself: HTTP clients retry a refused connect.
        let tookWhole = sawRebooting || (previous.map { $0.total > 0 && $0.bytes >= $0.total } ?? false)
        if !tookWhole {
            let during =
                previous.flatMap { $0.phase == .idle ? nil : $0 }.map { " during \($0.phase)\($0.total > 0 ? " at \($0.bytes) of \($0.total) bytes" : "")" }
                ?? ""
            let how = wasDown ? "went away" : "restarted"
            return fail(.network, "device \(how)\(during) and came back running \(running), not \(expected)")
        }
        return fail(.rebootedIntoOld, "device rebooted and reports \(running), not \(expected)\(oldVersion.map { " (it ran \($0) before)" } ?? "")")
    }

    private mutating func unreachable(_ reason: String, now: Int64) -> [Action] {
        guard presence.missed(now: now) <= timing.unreachableLimit else {
            let after = lastStatus.map { " after phase \($0.phase)" } ?? ""
            if sawRebooting {
                return fail(.timeout, "device did not come back within \(timing.unreachableLimit / 1000) s of rebooting: \(reason)")
            }
            return fail(.network, "device unreachable for \(timing.unreachableLimit / 1000) s\(after)\(progressText): \(reason)")
        }
        return [.wait(until: now + timing.pollInterval)]
    }
}
