import OTAMeshRollout

/// One push to a device with an HTTP upload form (ESP8266HTTPUpdateServer, the ESP32 ports of
/// it), as a pure state machine: the shell feeds it events (upload progress and answer, version
/// probes, clock ticks) with the time, and executes the actions it returns.
///
/// 0. Dialect ``Dialect/elegantOTA3`` only (ElegantOTA 3): ``Action/start``, `GET /ota/start?mode=fr&hash=MD5`
///    (basic auth as below): `OK` begins the update on the device; a 400 carries the device's
///    error (`MD5 parameter invalid`, Update.begin's), a 404 says the device has no ElegantOTA 3.
///    Connection failures retry as for the upload.
/// 1. `POST /update` (ElegantOTA 3: `POST /ota/upload`), multipart/form-data with the image in
///    the field `firmware`, with basic auth when credentials are configured. Connection failures before any byte was sent are
///    retried under the retry-timeout policy; a connection lost after that is
///    ``PushFailure/Kind/network`` (the device reset mid-upload).
/// 2. The answer: 200 with `Update Success! Rebooting...` (or a bare `OK`: ElegantOTA 2 on ESP32,
///    ElegantOTA 3) = the device took the image and restarts; 200 with `Update error: …` (the
///    server answers errors with 200) or `FAIL`, or any 4xx/5xx (ElegantOTA 3: 400 with
///    Update's error) is ``PushFailure/Kind/refused`` with the device's text; 401 is
///    "authentication failed".
/// 3. The upload server has no version endpoint, so confirmation is the shell's
///    ``Action/fetchVersion`` (an HTTP path the firmware serves, see ``HTTPUploadAdapter``):
///    polled every ``Timing/pollInterval`` until it reports the image's version (success). The
///    old version after the device went away and came back, or still after
///    ``Timing/rebootGrace``, is ``PushFailure/Kind/rebootedIntoOld``. Everything ends by
///    ``Timing/deadline``.
public struct HTTPUploadPush: Sendable {
    /// Timeouts and intervals, milliseconds (shared by the push families).
    public typealias Timing = PushTiming

    /// Which upload server the device runs (the registry option `dialect`).
    public enum Dialect: String, Sendable, CaseIterable {
        /// ESP8266HTTPUpdateServer and its ESP32 ports, ElegantOTA 2: one `POST /update`.
        case updateServer = "update-server"
        /// ElegantOTA 3: `GET /ota/start?mode=fr&hash=MD5`, then `POST /ota/upload`.
        case elegantOTA3 = "elegantota3"

        /// The upload path when the registry names none.
        public var uploadPath: String { self == .elegantOTA3 ? "/ota/upload" : "/update" }
    }

    public enum Event: Sendable, Equatable {
        case started
        /// ElegantOTA 3's `GET /ota/start` answered with this status and body.
        case startAnswered(status: Int, body: String)
        /// `GET /ota/start` could not be sent or not answered.
        case startFailed(String)
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
        /// ElegantOTA 3: `GET /ota/start?mode=fr&hash=` the image's MD5.
        case start
        case upload
        case fetchVersion
        case wait(until: Int64)
        case progress(DeviceOutcome.Phase)
        case succeeded(version: String)
        case failed(PushFailure)
    }

    enum Stage: Sendable, Equatable {
        case idle
        case starting
        case uploading
        case confirming
        case done
    }

    public let image: PushImage
    public let target: PushTarget
    public let timing: Timing
    /// Whether the shell sends credentials (only the fact: the machine never holds them).
    public let authenticates: Bool
    public let dialect: Dialect
    /// The upload's path, for the failures' words.
    public let uploadPath: String
    let started: Int64
    let random: Double
    var stage = Stage.idle
    var attempts = 0
    var reported = Set<Int>()
    var confirmation: RebootConfirmation?

    /// `random` (uniform in [0, 1)) sets the retry backoff's jitter.
    public init(
        image: PushImage, target: PushTarget, authenticates: Bool, dialect: Dialect = .updateServer, uploadPath: String? = nil,
        timing: Timing = Timing(), now: Int64, random: Double = 0.5
    ) {
        self.image = image
        self.target = target
        self.authenticates = authenticates
        self.dialect = dialect
        self.uploadPath = uploadPath ?? dialect.uploadPath
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
            if dialect == .elegantOTA3 {
                stage = .starting
                return [.start]
            }
            stage = .uploading
            return [.upload]
        case (.starting, .tick):
            return [.start]
        case (.starting, .startFailed(let reason)):
            return unreachable(attempt: reason, request: "GET /ota/start", now: now)
        case (.starting, .startAnswered(let status, let body)):
            return startAnswered(status: status, body: body)
        case (.starting, .imageUnreadable(let reason)):
            return fail(.refused, "image not sent: \(reason)")
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
            return fail(.network, "connection lost during POST \(uploadPath) after \(sent)\(of) bytes: \(reason)")
        }
        return unreachable(attempt: reason, request: "POST \(uploadPath)", now: now)
    }

    /// A request that never reached the device: again after the backoff, until the retry timeout.
    private mutating func unreachable(attempt reason: String, request: String, now: Int64) -> [Action] {
        attempts += 1
        switch timing.networkRetry(reason, attempt: attempts, started: started, now: now, random: random) {
        case .success(let until): return [.wait(until: until)]
        case .failure(let exhausted): return fail(.network, "device unreachable for \(request): \(exhausted.reason)")
        }
    }

    private mutating func startAnswered(status: Int, body: String) -> [Action] {
        let said = Self.text(body)
        let saidSuffix = said.isEmpty ? "" : ": \(said)"
        switch status {
        case 200 where said == "OK":
            stage = .uploading
            return [.upload]
        case 401:
            return fail(.refused, "authentication failed (HTTP 401 from GET /ota/start): \(authenticationWhy)")
        case 404:
            return fail(
                .refused,
                "GET /ota/start answered 404: the device runs no ElegantOTA 3 (dialect \(Dialect.elegantOTA3.rawValue)); "
                    + "for ESP8266HTTPUpdateServer or ElegantOTA 2 use dialect \(Dialect.updateServer.rawValue)")
        default:
            return fail(.refused, "device refused to start the update (HTTP \(status) from GET /ota/start)\(saidSuffix)")
        }
    }

    private var authenticationWhy: String {
        authenticates ? "the device rejected the configured user and password" : "the device wants a user and password and none is configured"
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
            return fail(.refused, "authentication failed (HTTP 401): \(authenticationWhy)")
        case 200:
            return fail(.refused, "POST \(uploadPath) answered 200 without \"Update Success!\"\(saidSuffix)")
        case 400 where dialect == .elegantOTA3:
            return fail(.refused, "device refused the image (HTTP 400 from POST \(uploadPath))\(saidSuffix)")
        case 404 where dialect == .updateServer:
            return fail(
                .refused,
                "POST \(uploadPath) answered 404: no upload form there (an ElegantOTA 3 device needs the option "
                    + "dialect=\(Dialect.elegantOTA3.rawValue))")
        default:
            return fail(.refused, "HTTP \(status) from POST \(uploadPath)\(saidSuffix)")
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
