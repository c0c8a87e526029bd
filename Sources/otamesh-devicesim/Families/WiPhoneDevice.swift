/// The WiPhone (HackEDA) OTA: playfultechnology/wiphone `WiPhone/ota.cpp` (`Ota::loadIniFile`,
/// `updateExists`, `doUpdate`, `hasJustUpdated`, `commitUpdate`) and the boot sequence of
/// `WiPhone.ino`; research notes §1. Each poll is one boot of the phone:
///
/// ```c
/// if (!ota.hasJustUpdated() && ota.userRequestedUpdate()) ota.doUpdate();
/// else if (!ota.hasJustUpdated() && ota.updateExists() && autoUpdate) ota.doUpdate();
/// …
/// if (running partition is ESP_OTA_IMG_PENDING_VERIFY) ota.commitUpdate();
/// ```
///
/// On the wire: `GET <path> HTTP/1.1\r\nHost: <host[:port]>\r\nConnection: close\r\n\r\n` over TLS
/// (`WiFiClientSecure` with the phone's CA); the response is read with
/// `readStringUntil('\r')` and parsed like NanoIni section 0 (``WiPhoneRules``). When
/// `compVersions(FIRMWARE_VERSION, version) < 0` the phone stores `newVersion`, `oldVersion`,
/// `hadJustUpdated=yes`, then runs arduino-esp32 `httpUpdate.update(client, url)` (no
/// currentVersion, so no `x-ESP32-version`), which reboots into the image on success.
///
/// Quirks kept on purpose:
/// - the real phone always connects to port 443 of the ini host; the emulator uses the port of
///   `--tls-gateway` (the `Host` header carries `host:port`, as the phone would send it);
/// - after a failed install (`HTTP_UPDATE_FAILED`) or a power loss mid-download,
///   `hadJustUpdated` stays `yes` while the running image is not pending verification, so no
///   later boot checks for updates again (`skipped` events) until the user resets the OTA
///   settings — the "marked failed, not retried until the user resets" behaviour;
/// - a version whose install was interrupted stays in `newVersion` and is refused with
///   `-900 Install prev failed` if checks resume.
struct WiPhoneDevice: EmulatedDevice {
    let identity: DeviceIdentity
    let client: ArduinoHTTPUpdateClient
    private(set) var running: RunningImage
    private var faults: FaultState

    // The phone's ota.ini (SPIFFS: survives reboots and power loss).
    private var newVersion = ""
    private var oldVersion = ""
    private var hadJustUpdated = ""
    private var latestServerVersion = "0"
    /// The running image was just installed and is not yet marked valid (otadata).
    private var pendingVerify = false

    var version: String { running.version }

    /// The first-byte wait of `loadIniFile` (`millis() - timeout > 15000` → -302).
    static let iniTimeout: Duration = .seconds(15)

    init(identity: DeviceIdentity, settings: RunSettings) {
        self.identity = identity
        client = ArduinoHTTPUpdateClient(identity: identity, esp8266: false, chip: settings.hardware, settings: settings)
        running = RunningImage.initial(chip: settings.hardware, version: settings.version, seed: settings.seed)
        faults = FaultState(plan: settings.faults, seed: settings.seed, device: identity.index)
    }

    /// `loadIniFile`'s request text.
    static func iniRequest(path: String, host: String) -> [UInt8] {
        Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
    }

    mutating func poll(_ context: PollContext) async -> PollReport {
        var report = PollReport()
        report.reported = running.version
        let bootedPending = pendingVerify
        defer {
            // Later in setup(): the image this boot started from is committed if it was pending.
            if bootedPending {
                pendingVerify = false
                newVersion = ""
                oldVersion = ""
                hadJustUpdated = ""
            }
        }
        // hasJustUpdated()
        if hadJustUpdated == "yes" {
            var reason =
                pendingVerify
                ? "booted after the update; no OTA check on this boot; committed (esp_ota_mark_app_valid_cancel_rollback)"
                : "hadJustUpdated=yes but the running image is not pending verify (a previous install failed): the phone does not check again until the user resets its OTA settings"
            if newVersion == oldVersion && !newVersion.isEmpty { reason += "; Rollback (-900)" }
            report.outcome = .skipped(reason: reason)
            return report
        }
        do {
            report.outcome = try await check(context)
        } catch let error as TransferError {
            switch error {
            case .powerLoss(let at): report.outcome = .powerLoss(atByte: at)
            case .timeout: report.outcome = .failed(stage: "check", reason: "-302 Timeout (\(error))", code: -302)
            case .connect, .tls: report.outcome = .failed(stage: "check", reason: "-301 Can't connect to server (\(error))", code: -301)
            default: report.outcome = .failed(stage: "check", reason: "\(error)", code: nil)
            }
        } catch {
            report.outcome = .failed(stage: "check", reason: "\(error)", code: nil)
        }
        report.finish(context, faults: &faults)
        return report
    }

    /// `updateExists()` (which calls `loadIniFile()` on the first check after boot) and, when it
    /// says yes, `doUpdate()`.
    private mutating func check(_ context: PollContext) async throws -> PollOutcome {
        let path = "/v1/wiphone/\(identity.id)/WiPhone-phone.ini"
        let endpoint = context.endpoint(target: path, tls: !context.settings.insecureHTTP)
        let raw = try await context.rawExchange(endpoint, request: Self.iniRequest(path: path, host: endpoint.hostHeader)) { io in
            try await io.readToEnd(limit: 64 << 10, phase: "ini")
        }
        let status = (try? ResponseHead.parse(Array(raw.prefix(ResponseHead.endOfHead(in: raw) ?? raw.count))))?.status
        context.decided(status: status)
        guard let manifest = WiPhoneRules.manifest(fromResponse: raw) else {
            return .noUpdate(reason: "-404 Not found (ini)")
        }
        latestServerVersion = manifest.version
        let diff = WiPhoneRules.compare(running.version, manifest.version)
        // updateExists()
        if latestServerVersion == "0" {
            return .noUpdate(reason: "ini has no version (reads as \"0\")")
        }
        if latestServerVersion == newVersion {
            return .failed(stage: "check", reason: "-900 Install prev failed (\(newVersion))", code: -900)
        }
        guard diff < 0 else {
            return .noUpdate(reason: "compVersions(\(running.version), \(manifest.version)) = \(diff)")
        }
        // doUpdate()
        let url = manifest.url
        // HTTPClient::begin(client, url) needs a scheme; the phone's client is WiFiClientSecure.
        guard let firmware = Endpoint.parse(url), firmware.isTLS || context.settings.insecureHTTP else {
            return .failed(stage: "download", reason: "HTTP_UPDATE_FAILED: url '\(url)' is not an absolute https:// URL", code: nil)
        }
        newVersion = manifest.version
        oldVersion = running.version
        hadJustUpdated = "yes"
        switch await client.run(context, endpoint: firmware, running: running, currentVersion: "", faults: &faults) {
        case .noUpdate(let why):
            return .noUpdate(reason: "HTTP_UPDATE_NO_UPDATES (\(why))")
        case .powerLoss(let at):
            throw TransferError.powerLoss(at: at)
        case .failed(let stage, let why, let code):
            newVersion = ""
            oldVersion = ""
            return .failed(stage: stage, reason: "HTTP_UPDATE_FAILED: \(why)", code: code)
        case .flashed(let image):
            if let problem = FlashVerifier.problem(image, chip: client.chip) {
                newVersion = ""
                oldVersion = ""
                return .failed(stage: "boot", reason: problem, code: nil)
            }
            let from = running.version
            let to = FlashVerifier.embeddedVersion(image) ?? manifest.version
            running = RunningImage(bytes: image, version: to)
            pendingVerify = true
            return .updated(from: from, to: to)
        }
    }
}
