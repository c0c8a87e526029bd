import OTAMeshRollout
import OTAMeshTransfer

/// One push to a device with an HTTP upload form (ESP8266HTTPUpdateServer, the ESP32 ports of
/// it), as a pure state machine: the shell feeds it events (upload progress and answer, version
/// probes, clock ticks) with the time, and executes the actions it returns.
///
/// 1. `POST /update`, multipart/form-data with the image in the field `firmware`, with basic
///    auth when credentials are configured. Connection failures before any byte was sent are
///    retried under the retry-timeout policy; a connection lost after that is
///    ``PushFailure/Kind/network`` (the device reset mid-upload).
/// 2. The answer: 200 with `Update Success! Rebooting...` (or a bare `OK`, ElegantOTA 2 on ESP32)
///    = the device took the image and restarts; 200 with `Update error: …` (the server answers
///    errors with 200) or `FAIL`, or any 4xx/5xx is
///    ``PushFailure/Kind/refused`` with the device's text; 401 is "authentication failed".
/// 3. The upload server has no version endpoint, so confirmation is the shell's
///    ``Action/fetchVersion`` (an HTTP path the firmware serves, see ``HTTPUploadAdapter``):
///    polled every ``Timing/pollInterval`` until it reports the image's version (success). The
///    old version after the device went away and came back, or still after
///    ``Timing/rebootGrace``, is ``PushFailure/Kind/rebootedIntoOld``. Everything ends by
///    ``Timing/deadline``.
public struct HTTPUploadPush: Sendable {
    /// Timeouts and intervals, milliseconds (shared by the push families).
    public typealias Timing = PushTiming

    public enum Event: Sendable, Equatable {
        case started
        /// The first bytes of the upload body went out.
        case sending
        /// The whole body went out.
        case sent
        /// `POST /update` answered with this status and body.
        case uploaded(status: Int, body: String)
        /// The upload failed after `sentBytes` body bytes (0: the connection was never made).
        case uploadFailed(String, sentBytes: Int64)
        /// The image's file could not be read (nothing was sent).
        case imageUnreadable(String)
        /// The confirmation endpoint answered with this version.
        case version(String)
        /// The confirmation endpoint did not answer, or not with a version.
        case versionFailed(String)
        /// The time asked for with ``Action/wait(until:)`` has come.
        case tick
    }

    public enum Action: Sendable, Equatable {
        case upload
        case fetchVersion
        case wait(until: Int64)
        case progress(DeviceOutcome.Phase)
        case succeeded(version: String)
        case failed(PushFailure)
    }

    enum Stage: Sendable, Equatable {
        case idle
        case uploading
        case confirming
        case done
    }

    public let image: PushImage
    public let target: PushTarget
    public let timing: Timing
    /// Whether the shell sends credentials (only the fact: the machine never holds them).
    public let authenticates: Bool
    let started: Int64
    let random: Double
    var stage = Stage.idle
    var attempts = 0
    var reported = Set<Int>()
    var confirmation: RebootConfirmation?

    /// `random` (uniform in [0, 1)) sets the retry backoff's jitter.
    public init(image: PushImage, target: PushTarget, authenticates: Bool, timing: Timing = Timing(), now: Int64, random: Double = 0.5) {
        self.image = image
        self.target = target
        self.authenticates = authenticates
        self.timing = timing
        started = now
        self.random = random
    }

    public mutating func handle(_ event: Event, now: Int64) -> [Action] {
        guard stage != .done else { return [] }
        if now - started > timing.deadline {
            let last = confirmation?.lastVersion.map { " (device last reported \($0))" } ?? ""
            return fail(.timeout, "no confirmed version within \(timing.deadline / 1000) s\(last)")
        }
        switch (stage, event) {
        case (.idle, .started):
            guard image.version != nil else {
                return fail(.refused, "image \(image.path) names no version; the push could not be confirmed")
            }
            stage = .uploading
            return [.upload]
        case (.uploading, .tick):
            return [.upload]
        case (.uploading, .sending):
            return report(.downloading)
        case (.uploading, .sent):
            return report(.downloading) + report(.installing)
        case (.uploading, .uploadFailed(let reason, let sent)):
            return uploadFailed(reason, sent: sent, now: now)
        case (.uploading, .imageUnreadable(let reason)):
            return fail(.refused, "image not sent: \(reason)")
        case (.uploading, .uploaded(let status, let body)):
            return uploaded(status: status, body: body, now: now)
        case (.confirming, .tick):
            return [.fetchVersion]
        case (.confirming, .version(let version)):
            return confirm(version, now: now)
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

    private mutating func uploadFailed(_ reason: String, sent: Int64, now: Int64) -> [Action] {
        if sent > 0 {
            let of = image.length > 0 ? " of \(image.length)" : ""
            return fail(.network, "connection lost during POST /update after \(sent)\(of) bytes: \(reason)")
        }
        attempts += 1
        switch timing.networkRetry(reason, attempt: attempts, started: started, now: now, random: random) {
        case .success(let until): return [.wait(until: until)]
        case .failure(let exhausted): return fail(.network, "device unreachable for POST /update: \(exhausted.reason)")
        }
    }

    /// The device's answer text without HTML tags, on one line, at most 200 characters.
    static func text(_ body: String) -> String {
        var out = ""
        var inTag = false
        for character in body {
            if character == "<" { inTag = true; continue }
            if character == ">" { inTag = false; continue }
            if !inTag { out.append(character.isNewline ? " " : character) }
        }
        return String(out.trimmingPrefixWhitespace().prefix(200))
    }

    private mutating func uploaded(status: Int, body: String, now: Int64) -> [Action] {
        let said = Self.text(body)
        let saidSuffix = said.isEmpty ? "" : ": \(said)"
        switch status {
        // ElegantOTA 2 on ESP32 (and arduino-esp32's OTAWebUpdater example) answer a bare OK / FAIL.
        case 200 where said.contains("Update Success") || said == "OK":
            stage = .confirming
            confirmation = RebootConfirmation(expected: image.version ?? "?", before: target.version, since: now)
            return report(.downloading) + report(.installing) + [.wait(until: now + timing.pollInterval)]
        case 200 where said.contains("Update error") || said == "FAIL":
            return fail(.refused, "device refused the image\(saidSuffix)")
        case 401:
            let why = authenticates ? "the device rejected the configured user and password" : "the device wants a user and password and none is configured"
            return fail(.refused, "authentication failed (HTTP 401): \(why)")
        case 200:
            return fail(.refused, "POST /update answered 200 without \"Update Success!\"\(saidSuffix)")
        default:
            return fail(.refused, "HTTP \(status) from POST /update\(saidSuffix)")
        }
    }

    private mutating func confirm(_ version: String, now: Int64) -> [Action] {
        judge(confirmation?.reported(version, now: now, timing: timing), now: now)
    }

    private mutating func unreachable(_ reason: String, now: Int64) -> [Action] {
        judge(confirmation?.unreachable(reason, now: now, timing: timing), now: now)
    }

    private mutating func judge(_ verdict: RebootConfirmation.Verdict?, now: Int64) -> [Action] {
        switch verdict {
        case .confirmed(let version)?:
            stage = .done
            return [.succeeded(version: version)]
        case .failed(let failure)?:
            return fail(failure.kind, failure.reason)
        case .pollAgain?, nil:
            return [.wait(until: now + timing.pollInterval)]
        }
    }
}

extension String {
    fileprivate func trimmingPrefixWhitespace() -> String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text = text.dropFirst() }
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return String(text)
    }
}
