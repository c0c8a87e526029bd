import ArgumentParser
import Foundation
import Logging
import NIOPosix
import OTAMeshCommon
import OTAMeshDiscovery

/// `serve`: push-family twins, each an HTTP server on its own loopback port, until
/// `--duration` has passed (or the process is stopped). JSON lines on stdout: `listening`
/// (with the address) per device, then `post`, `installed`, `failed`, `power-loss`,
/// `rebooting`, `booted` as they happen.
struct ServeTwins: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve push-family device twins (projectMM, HTTP upload, ArduinoOTA, fetch-url) on loopback ports (JSON lines on stdout).",
        discussion: """
            projectmm  GET /api/state (FirmwareUpdate status phase, version, firmware, update_pct bytes/max)
                       and POST /api/firmware/url {"url"} → 202 {"ok":true}; the twin GETs the URL, walks
                       starting → downloading → flashing → rebooting, closes its port for --reboot-ms and
                       comes back with the image's version (ESP32 app description, else --new-version).
            Faults (--fail): refuse-501, refuse-400, refuse-500, die-mid-transfer, reboot-old, wrong-variant.
            http-upload  ESP8266HTTPUpdateServer: GET /update (form), POST /update multipart (field firmware),
                       basic auth with --user/--password (401), 200 "Update Success! Rebooting..." or
                       200 "Update error: …"; the image must be an ESP app image for the --variant chip; the port
                       closes for --reboot-ms and GET /version answers the image's version.
                       --dialect elegantota3: ElegantOTA 3 instead: GET /ota/start?mode=fr&hash=MD5 ("OK", 400 "MD5
                       parameter invalid"), POST /ota/upload ("OK" or 400 with Update's error, MD5 checked), restart
                       after --reboot-delay-ms (ElegantOTA waits 2000).
            Faults (--fail): update-error, die-mid-transfer, reboot-old.
            arduino-ota  ArduinoOTA on one port (the listening line's address): UDP answers the classic invitation
                       "0 PORT SIZE MD5" (OK / AUTH nonce with --password / ERR: …) and the device connects back
                       to the host, acknowledging byte counts and ending with OK; TCP speaks ESPHome's native OTA v1
                       (python3 -m espota). Update.end checks the MD5 and that the image is an ESP app image for the
                       --variant chip; the ports close for --reboot-ms; GET /version on the http address answers
                       {"version","variant"}.
            Faults (--fail): refuse, die-mid-transfer, reboot-old, wrong-variant.
            fetch-url  a device that only takes "fetch this URL": --method --path (default POST /ota) with the URL
                       in a JSON body, a form body or the query → 202; the twin GETs it, checks an ESP app image for
                       the --variant chip, closes its port for --reboot-ms; GET /version answers {"version","variant"}.
                       Basic auth with --user/--password.
            Faults (--fail): refuse (403), die-mid-transfer (the download drops, the device stays on its old
                       firmware), reboot-old, wrong-variant.
            """)

    @Option(help: "Device family: \(DeviceFamily.names(DeviceFamily.push)).") var family = DeviceFamily.projectMM.rawValue
    @Option(help: "Number of devices.") var count = 1
    @Option(name: .customLong("listen-base"), help: "HOST:PORT of the first device; the next ones take the following ports (port 0: any free port each).")
    var listenBase = "127.0.0.1:0"
    @Option(help: "The version the devices run at start.") var version = "1.0.0"
    @Option(help: "The firmware variant key the devices report (esp32, esp32-eth, esp32s3-n16r8, …).") var variant = "esp32"
    @Option(name: .customLong("new-version"), help: "Version reported after installing an image that embeds none.") var newVersion: String?
    @Option(
        help:
            "Fault: projectmm \(ProjectMMFault.allCases.map(\.rawValue).joined(separator: ", ")); http-upload \(HTTPUploadFault.allCases.map(\.rawValue).joined(separator: ", ")); arduino-ota \(ArduinoOTAFault.allCases.map(\.rawValue).joined(separator: ", ")); fetch-url \(FetchURLFault.allCases.map(\.rawValue).joined(separator: ", "))."
    ) var fail = "none"
    @Option(help: "http-upload: update-server (ESP8266HTTPUpdateServer) or elegantota3 (ElegantOTA 3).") var dialect = "update-server"
    @Option(help: "http-upload, fetch-url: the basic-auth user the device wants (with --password).") var user: String?
    @Option(help: "http-upload, fetch-url: the basic-auth password the device wants; arduino-ota: the OTA password (a test twin's, not a secret).")
    var password: String?
    @Option(name: .customLong("http-base"), help: "arduino-ota: port of the first device's HTTP /version server (0: any free port each).") var httpBase = 0
    @Option(
        help:
            "arduino-ota: the sketch's filesystem (as run --filesystem): a filesystem upload (command 100) is mounted, its config-id reported as config by /version."
    )
    var filesystem: String?
    @Option(name: .customLong("secret-key"), help: "arduino-ota --filesystem: a configuration key reported only as set; repeatable.") var secretKeys: [String] =
        []
    @Option(name: .customLong("step-ms"), help: "Milliseconds between status steps (starting → downloading → flashing).") var stepMS = 300
    @Option(name: .customLong("reboot-delay-ms"), help: "Milliseconds in 'rebooting' before the restart (the firmware waits 600).") var rebootDelayMS = 600
    @Option(name: .customLong("reboot-ms"), help: "Milliseconds the port stays closed while the device restarts.") var rebootMS = 3000
    @Option(help: "Read the image at most this many bytes per second.") var rate: Int?
    @Option(help: "Download read timeout in seconds.") var timeout = 10.0
    @Option(help: "Stop serving after this many seconds.") var duration = 600.0
    @Flag(
        help:
            "Announce each device by mDNS through avahi-daemon, as the real firmware does (projectmm, http-upload: _http._tcp; arduino-ota: _arduino._tcp with board, auth_upload and http_port); needs fixed ports."
    )
    var announce = false
    @Option(name: .customLong("name-prefix"), help: "mDNS instance names: PREFIX-0, PREFIX-1, … (default: the family).") var namePrefix: String?

    @Option(help: "fetch-url: the command's HTTP method.") var method = "POST"
    @Option(help: "fetch-url: the command's path.") var path = "/ota"

    func validate() throws {
        guard let pushFamily = DeviceFamily(known: family), pushFamily.isPush else {
            throw ValidationError("serve knows --family \(DeviceFamily.names(DeviceFamily.push))")
        }
        guard count >= 1, count <= 10_000 else { throw ValidationError("--count must be 1…10000") }
        let known =
            switch pushFamily {
            case .projectMM: ProjectMMFault.allCases.map(\.rawValue)
            case .httpUpload: HTTPUploadFault.allCases.map(\.rawValue)
            case .fetchURL: FetchURLFault.allCases.map(\.rawValue)
            default: ArduinoOTAFault.allCases.map(\.rawValue)
            }
        guard known.contains(fail) else {
            throw ValidationError("unknown --fail '\(fail)' (known: \(known.joined(separator: ", ")))")
        }
        guard HTTPUploadDialect(rawValue: dialect) != nil, dialect == "update-server" || DeviceFamily(rawValue: family) == .httpUpload else {
            throw ValidationError("--dialect: update-server or elegantota3, for --family http-upload")
        }
        guard DeviceFamily(rawValue: family) == .arduinoOTA || (user == nil) == (password == nil) else {
            throw ValidationError("--user and --password go together")
        }
        guard (0...65535).contains(httpBase) else { throw ValidationError("--http-base must be a port") }
        guard Self.split(listenBase) != nil else { throw ValidationError("--listen-base must be HOST:PORT") }
        guard stepMS >= 0, rebootDelayMS >= 0, rebootMS >= 0, duration > 0, timeout > 0 else {
            throw ValidationError("timings must be ≥ 0 and --duration, --timeout > 0")
        }
        if let rate, rate < 1 { throw ValidationError("--rate must be ≥ 1") }
        if announce, Self.split(listenBase)?.1 == 0 { throw ValidationError("--announce needs a fixed --listen-base port") }
        if announce, DeviceFamily(rawValue: family) == .arduinoOTA, httpBase == 0 {
            throw ValidationError("--announce of arduino-ota twins needs a fixed --http-base port")
        }
    }

    /// The mDNS announcements of the twins (``announce``): one per device, on its own port.
    func announcements(host: String, basePort: Int) -> [ServiceAnnouncement] {
        guard announce else { return [] }
        let prefix = namePrefix ?? family
        return (0..<count).map { index in
            if DeviceFamily(rawValue: family) == .arduinoOTA {
                // As ArduinoOTA's MDNS.enableArduino: board, tcp_check, ssh_upload, auth_upload; the
                // twin adds the port of its /version server (real firmware that serves one would too).
                let txt = [
                    "board": variant, "tcp_check": "no", "ssh_upload": "no", "auth_upload": password == nil ? "no" : "yes",
                    "http_port": String(httpBase + index),
                ]
                return ServiceAnnouncement(name: "\(prefix)-\(index)", type: "_arduino._tcp", port: UInt16(basePort + index), txt: txt)
            }
            var txt: [String: String] = [:]
            if DeviceFamily(rawValue: family) == .httpUpload { txt["board"] = variant }
            return ServiceAnnouncement(name: "\(prefix)-\(index)", type: "_http._tcp", port: UInt16(basePort + index), txt: txt)
        }
    }

    /// Runs the announcements (if any) beside `serve` until `serve` ends.
    func announcing(host: String, basePort: Int, _ serve: @escaping @Sendable () async throws -> Void) async throws {
        let announcements = announcements(host: host, basePort: basePort)
        guard !announcements.isEmpty else { return try await serve() }
        var logger = Logger(label: "otamesh-devicesim.mdns")
        logger.logLevel = .warning
        let discovery = ServiceDiscovery(types: [], announcements: announcements, logger: logger)
        let announcer = Task { await discovery.run { _ in } }
        defer { announcer.cancel() }
        try await serve()
    }

    static func split(_ address: String) -> (String, Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        let host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return host.isEmpty ? nil : (host, port)
    }

    func run() async throws {
        let (host, basePort) = Self.split(listenBase)!
        try await announcing(host: host, basePort: basePort) { [self] in
            if DeviceFamily(rawValue: family) == .httpUpload { return try await runHTTPUpload(host: host, basePort: basePort) }
            if DeviceFamily(rawValue: family) == .arduinoOTA { return try await runArduinoOTA(host: host, basePort: basePort) }
            if DeviceFamily(rawValue: family) == .fetchURL { return try await runFetchURL(host: host, basePort: basePort) }
            try await runProjectMM(host: host, basePort: basePort)
        }
    }

    private func runProjectMM(host: String, basePort: Int) async throws {
        let settings = ProjectMMSettings(
            version: version, variant: variant, newVersion: newVersion, fault: ProjectMMFault(rawValue: fail)!,
            stepMS: stepMS, rebootDelayMS: rebootDelayMS, rebootMS: rebootMS, rate: rate,
            timeout: .milliseconds(Int64(timeout * 1000)))
        let transport = Transport(group: MultiThreadedEventLoopGroup.singleton, tls: nil, connectTimeout: .milliseconds(Int64(timeout * 1000)))
        let sink = EventSink(quiet: false)
        let twins = (0..<count).map { index in
            ProjectMMTwin(
                id: "projectmm-\(index)", host: host, port: basePort == 0 ? 0 : basePort + index,
                settings: settings, transport: transport, sink: sink)
        }
        try await serve(twins, run: { try await $0.run(ready: { _ in }) }, stop: { await $0.stop() })
    }

    private func runHTTPUpload(host: String, basePort: Int) async throws {
        let chip = String(variant.split(separator: "-").first ?? "esp32")
        let settings = HTTPUploadSettings(
            dialect: HTTPUploadDialect(rawValue: dialect) ?? .updateServer, version: version, chip: chip, newVersion: newVersion,
            fault: HTTPUploadFault(rawValue: fail) ?? .none,
            username: user, password: password, rebootDelayMS: rebootDelayMS, rebootMS: rebootMS)
        let sink = EventSink(quiet: false)
        let twins = (0..<count).map { index in
            HTTPUploadTwin(id: "http-upload-\(index)", host: host, port: basePort == 0 ? 0 : basePort + index, settings: settings, sink: sink)
        }
        try await serve(twins, run: { try await $0.run() }, stop: { await $0.stop() })
    }

    private func runArduinoOTA(host: String, basePort: Int) async throws {
        let chip = String(variant.lowercased().split(separator: "-").first ?? "esp32")
        var settings = ArduinoOTASettings(
            version: version, variant: variant, chip: chip, newVersion: newVersion, fault: ArduinoOTAFault(rawValue: fail) ?? .none,
            password: password, rebootDelayMS: rebootDelayMS, rebootMS: rebootMS)
        if let filesystem {
            do { settings.filesystem = try DeviceFilesystem.parse(filesystem, secretKeys: Set(secretKeys)) } catch {
                throw ValidationError("--filesystem: \(error)")
            }
        }
        let sink = EventSink(quiet: false)
        let twins = (0..<count).map { index in
            ArduinoOTATwin(
                id: "arduino-ota-\(index)", host: host, otaPort: basePort == 0 ? 0 : basePort + index,
                httpPort: httpBase == 0 ? 0 : httpBase + index, settings: settings, sink: sink)
        }
        try await serve(twins, run: { try await $0.run() }, stop: { await $0.stop() })
    }

    private func runFetchURL(host: String, basePort: Int) async throws {
        let settings = FetchURLSettings(
            version: version, variant: variant, newVersion: newVersion, fault: FetchURLFault(rawValue: fail) ?? .none,
            method: method.uppercased(), path: path, username: user, password: password, rebootDelayMS: rebootDelayMS, rebootMS: rebootMS,
            timeout: .milliseconds(Int64(timeout * 1000)))
        let transport = Transport(group: MultiThreadedEventLoopGroup.singleton, tls: nil, connectTimeout: .milliseconds(Int64(timeout * 1000)))
        let sink = EventSink(quiet: false)
        let twins = (0..<count).map { index in
            FetchURLTwin(
                id: "fetch-url-\(index)", host: host, port: basePort == 0 ? 0 : basePort + index, settings: settings,
                transport: transport, sink: sink)
        }
        try await serve(twins, run: { try await $0.run() }, stop: { await $0.stop() })
    }

    /// Runs every twin until `--duration` has passed, then stops them all.
    private func serve<Twin: Sendable>(
        _ twins: [Twin], run: @escaping @Sendable (Twin) async throws -> Void,
        stop: @escaping @Sendable (Twin) async -> Void
    ) async throws {
        let duration = duration
        try await withThrowingTaskGroup(of: Void.self) { group in
            for twin in twins {
                group.addTask { try await run(twin) }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int64(duration * 1000)))
                for twin in twins { await stop(twin) }
            }
            try await group.waitForAll()
        }
    }
}
