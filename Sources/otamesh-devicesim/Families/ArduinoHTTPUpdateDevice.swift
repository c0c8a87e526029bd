/// An Arduino sketch that calls `httpUpdate.update(client, "<gateway>/v1/esp/update",
/// currentVersion)` once per poll (ESP8266httpUpdate or ESP32 HTTPUpdate; see
/// ``ArduinoHTTPUpdateClient`` for the wire). On success the core reboots
/// (`rebootOnUpdate`), and the new sketch reports its own MD5 (and version) on the next poll.
///
/// After a power loss both cores start over: the ESP8266 Updater writes the copy command for
/// eboot (`eboot_command_write`) only in `Update.end()`, and the ESP32 Updater's
/// `esp_ota_begin` erases the partition on every attempt; neither keeps a resume offset.
struct ArduinoHTTPUpdateDevice: EmulatedDevice {
    let identity: DeviceIdentity
    let client: ArduinoHTTPUpdateClient
    private(set) var running: RunningImage
    /// The `currentVersion` argument the sketch passes ("" = the header is not sent).
    private var currentVersion: String
    private var faults: FaultState
    /// The `config-id` of the configuration the filesystem holds ("" = none yet).
    private var configID = ""

    var version: String { running.version }

    init(identity: DeviceIdentity, esp8266: Bool, settings: RunSettings) {
        self.identity = identity
        let chip = esp8266 ? "esp8266" : settings.hardware
        client = ArduinoHTTPUpdateClient(identity: identity, esp8266: esp8266, chip: chip, settings: settings)
        running = RunningImage.initial(chip: chip, version: settings.version, seed: settings.seed)
        currentVersion = settings.version
        faults = FaultState(plan: settings.faults, seed: settings.seed, device: identity.index)
    }

    mutating func poll(_ context: PollContext) async -> PollReport {
        var report = PollReport()
        report.reported = currentVersion.isEmpty ? "md5:\(running.sketchMD5)" : currentVersion
        let endpoint = context.endpoint(target: "/v1/esp/update", tls: false)
        switch await client.run(context, endpoint: endpoint, running: running, currentVersion: currentVersion, faults: &faults) {
        case .noUpdate(let why): report.outcome = .noUpdate(reason: why)
        case .failed(let stage, let why, let code): report.outcome = .failed(stage: stage, reason: why, code: code)
        case .powerLoss(let at): report.outcome = .powerLoss(atByte: at)
        case .flashed(let image):
            // Update.end() passed and the core restarts; the boot decides (the ESP8266 ROM
            // checks the image checksum, the ESP32 bootloader verified it already).
            let from = running.version
            if let problem = FlashVerifier.problem(image, chip: client.chip) {
                report.outcome = .failed(stage: "boot", reason: problem, code: nil)
            } else {
                // The new sketch reports its compiled-in version; when the image carries none
                // (ESP8266) the emulator uses --new-version, else only the MD5 identifies it.
                let embedded = FlashVerifier.embeddedVersion(image) ?? context.settings.newVersion
                running = RunningImage(bytes: image, version: embedded ?? "md5:\(ImageFacts.md5Hex(image))")
                currentVersion = embedded ?? ""
                report.outcome = .updated(from: from, to: running.version)
            }
        }
        if case .updated = report.outcome {
            // The core restarts into the new sketch; it asks for its filesystem on the next poll.
        } else if let filesystem = context.settings.filesystem {
            report.filesystem = await checkFilesystem(filesystem, context: context, endpoint: endpoint)
        }
        report.finish(context, faults: &faults)
        return report
    }

    /// `ESPhttpUpdate.updateFS(client, url, configID)`, then mounting what arrived.
    private mutating func checkFilesystem(_ filesystem: DeviceFilesystem, context: PollContext, endpoint: Endpoint) async -> FilesystemOutcome {
        switch await client.run(context, endpoint: endpoint, running: running, currentVersion: configID, faults: &faults, filesystemSize: filesystem.size) {
        case .noUpdate: return .current(configID.isEmpty ? "none" : configID)
        case .failed(_, let why, _): return .failed(why)
        case .powerLoss(let at): return .failed("power lost at byte \(at) of the filesystem image")
        case .flashed(let image):
            switch filesystem.mount(image) {
            case .success(let mounted):
                configID = mounted.configID
                return .configured(mounted)
            case .failure(let problem):
                return .failed(problem.description)
            }
        }
    }
}
