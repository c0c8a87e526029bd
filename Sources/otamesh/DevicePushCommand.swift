import ArgumentParser
import Foundation
import OTAMeshCommon
import OTAMeshDevices

/// `otamesh device push`: one push by hand, outside a rollout — to try a device, or to test an
/// adapter against a twin. Progress lines, then one JSON line with the outcome; exit 1 on failure.
struct DevicePush: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract:
            "Push an image to one push device now (projectmm, fetch-url: its URL; http-upload, arduino-ota: the file) and wait for its version after reboot.")

    @Option(help: "Device family: \(DeviceFamily.names(DeviceFamily.push)).") var family = DeviceFamily.projectMM
    @Option(help: "The device: HOST or HOST:PORT (port 80 by default; arduino-ota: the OTA port, 3232, or 8266 for an esp8266 variant).") var address: String
    @Option(help: "Device id for the output.") var id = "device"
    @Option(help: "projectmm, fetch-url: the image URL the device fetches (http:// or https://, as the device reaches it).") var url: String?
    @Option(help: "http-upload, arduino-ota: the image file to upload.") var file: String?
    @Option(help: "The version the image carries (success = the device reports it after reboot).") var version: String
    @Option(help: "projectmm, arduino-ota, fetch-url: the image's firmware variant (esp32, esp32-eth, esp32s3-n16r8, esp8266, …).") var variant: String?
    @Option(
        name: .customLong("device-variant"), help: "arduino-ota: the variant the device is known to run (an image for another chip is refused before sending).")
    var deviceVariant: String?
    @Option(
        help:
            "arduino-ota: wire dialect, arduino (UDP invitation, espota.py, the default) or esphome (ESPHome native OTA); http-upload: update-server (ESP8266HTTPUpdateServer, ElegantOTA 2, the default) or elegantota3 (ElegantOTA 3: GET /ota/start, POST /ota/upload)."
    ) var dialect: String?
    @Option(help: "http-upload, fetch-url: basic-auth user (the password comes from --password-env or --password-file, never the command line).") var user:
        String?
    @Option(name: .customLong("password-env"), help: "http-upload, fetch-url, arduino-ota: name of the environment variable holding the password.")
    var passwordEnv: String?
    @Option(name: .customLong("password-file"), help: "http-upload, fetch-url, arduino-ota: file holding the password (first line).") var passwordFile: String?
    @Option(name: .customLong("upload-path"), help: "http-upload: the upload form's path (default /update; elegantota3: /ota/upload).") var uploadPath: String?
    @Option(name: .customLong("version-path"), help: "http-upload, arduino-ota: the path answering the running version (JSON {\"version\"} or plain text).")
    var versionPath = "/version"
    @Option(name: .customLong("version-port"), help: "arduino-ota: the HTTP port answering the version.") var versionPort = 80
    @Option(help: "HTTP proxy the device is reached through (http://HOST:PORT).") var proxy: String?
    @Option(
        name: .customLong("option"),
        help:
            "A device option key=value, as the registry holds them (fetch-url: method, path, body, content_type, accept, version_path, version_port, reboot_grace; http-upload: dialect, upload_path, version_path; arduino-ota: dialect, ota_port, version_port, version_path); repeatable."
    )
    var deviceOptions: [String] = []
    @Option(name: .customLong("poll-ms"), help: "Status (version) poll interval, milliseconds.") var pollMS = 1000
    @Option(help: "Seconds until the push fails as timeout.") var deadline = 600.0
    @Option(help: "Seconds the device may be unreachable once it accepted.") var unreachable = 120.0
    @Option(name: .customLong("retry-timeout"), help: "Seconds to retry an unreachable device before it accepted.") var retryTimeout = 30.0
    @Option(
        name: .customLong("reboot-grace"),
        help: "http-upload, arduino-ota, fetch-url: seconds the old version may still answer after the upload before it counts as rebooted-into-old.")
    var rebootGrace = 30.0
    @Option(
        name: .customLong("request-timeout"),
        help: "Seconds per HTTP request; arduino-ota: also per OTA answer (invitation, connect back, handshake step, no progress).") var requestTimeout = 5.0
    @Option(name: .customLong("result-timeout"), help: "arduino-ota: seconds from the last image byte to the device's result.") var resultTimeout = 60.0

    func validate() throws {
        switch family {
        case .projectMM:
            guard url != nil, variant != nil else { throw ValidationError("--family projectmm needs --url and --variant") }
        case .fetchURL:
            guard url != nil else { throw ValidationError("--family fetch-url needs --url") }
            do { _ = try FetchURLRequest(options: try DevicePush.options(deviceOptions)) } catch let error as FetchURLRequest.OptionError {
                throw ValidationError("--option: \(error)")
            }
            try validateCredentials()
        case .httpUpload:
            guard file != nil else { throw ValidationError("--family http-upload needs --file") }
            try validateCredentials()
            guard dialect.map({ HTTPUploadPush.Dialect(rawValue: $0) != nil }) ?? true else { throw ValidationError("--dialect: update-server or elegantota3") }
            guard uploadPath?.hasPrefix("/") ?? true, versionPath.hasPrefix("/") else { throw ValidationError("--upload-path and --version-path start with /") }
        case .arduinoOTA:
            guard file != nil else { throw ValidationError("--family arduino-ota needs --file") }
            guard ArduinoOTADialect(rawValue: dialect ?? "arduino") != nil else { throw ValidationError("--dialect: arduino or esphome") }
            guard user == nil else { throw ValidationError("--family arduino-ota has no user: the password alone (--password-env or --password-file)") }
            guard passwordEnv == nil || passwordFile == nil else { throw ValidationError("--password-env or --password-file, not both") }
            guard versionPath.hasPrefix("/"), (1...65535).contains(versionPort) else {
                throw ValidationError("--version-path starts with /; --version-port is a port")
            }
            guard resultTimeout > 0 else { throw ValidationError("--result-timeout > 0") }
        default:
            throw ValidationError("--family: projectmm, http-upload, arduino-ota or fetch-url")
        }
        guard pollMS >= 10, deadline > 0, unreachable > 0, retryTimeout >= 0, requestTimeout > 0, rebootGrace >= 0 else {
            throw ValidationError("--poll-ms ≥ 10; --deadline, --unreachable, --request-timeout > 0")
        }
    }

    /// `key=value` options into a map; a repeated key or one without `=` is an error.
    static func options(_ pairs: [String]) throws -> [String: String] {
        var options: [String: String] = [:]
        for pair in pairs {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else { throw ValidationError("--option '\(pair)': expected key=value") }
            let key = String(pair[..<equals])
            guard options[key] == nil else { throw ValidationError("--option \(key) given twice") }
            options[key] = String(pair[pair.index(after: equals)...])
        }
        return options
    }

    func validateCredentials() throws {
        guard (user == nil) == (passwordEnv == nil && passwordFile == nil) else {
            throw ValidationError("--user needs --password-env or --password-file, and they need --user")
        }
        guard passwordEnv == nil || passwordFile == nil else { throw ValidationError("--password-env or --password-file, not both") }
    }

    func run() async throws {
        if family == .httpUpload { return try await pushUpload() }
        if family == .arduinoOTA { return try await pushArduinoOTA() }
        if family == .fetchURL { return try await pushFetchURL() }
        var timing = ProjectMMPush.Timing()
        timing.pollInterval = Int64(pollMS)
        timing.deadline = Int64(deadline * 1000)
        timing.unreachableLimit = Int64(unreachable * 1000)
        timing.retry.retryTimeout = retryTimeout
        let adapter = ProjectMMAdapter(timing: timing, requestTimeout: .milliseconds(Int64(requestTimeout * 1000)))
        let (host, port) = PushTarget.hostAndPort(address, defaultPort: 80)
        let target = PushTarget(id: id, family: family, host: host, port: port, proxy: proxy)
        let url = url ?? ""
        let path = URL(string: url)?.path ?? url
        let image = PushImage(path: path, sha256: "", length: 0, version: version, file: "", url: url, variant: variant)
        try await report(adapter, image: image, target: target)
    }

    /// The password of --password-env / --password-file (never an argument: those show in `ps`).
    func credentials() throws -> PushCredentials? {
        guard let user = user ?? (family == .arduinoOTA ? "" : nil) else { return nil }
        if let passwordEnv {
            guard let password = ProcessInfo.processInfo.environment[passwordEnv] else {
                throw ValidationError("--password-env: \(passwordEnv) is not set")
            }
            return PushCredentials(username: user, password: password)
        }
        if let passwordFile {
            guard let data = FileManager.default.contents(atPath: passwordFile), data.count <= 4096 else {
                throw ValidationError("--password-file: cannot read \(passwordFile) (or larger than 4 KiB)")
            }
            let password = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            return PushCredentials(username: user, password: password)
        }
        return nil
    }

    func pushFetchURL() async throws {
        var timing = FetchURLPush.Timing()
        timing.pollInterval = Int64(pollMS)
        timing.deadline = Int64(deadline * 1000)
        timing.unreachableLimit = Int64(unreachable * 1000)
        timing.retry.retryTimeout = retryTimeout
        timing.rebootGrace = Int64(rebootGrace * 1000)
        let adapter = FetchURLAdapter(timing: timing, requestTimeout: .milliseconds(Int64(requestTimeout * 1000)))
        let (host, port) = PushTarget.hostAndPort(address, defaultPort: 80)
        let target = PushTarget(
            id: id, family: family, host: host, port: port, proxy: proxy, credentials: try credentials(),
            options: try Self.options(deviceOptions))
        let url = url ?? ""
        let path = URL(string: url)?.path ?? url
        let image = PushImage(path: path, sha256: "", length: 0, version: version, file: "", url: url, variant: variant)
        try await report(adapter, image: image, target: target)
    }

    func pushUpload() async throws {
        var timing = HTTPUploadPush.Timing()
        timing.pollInterval = Int64(pollMS)
        timing.deadline = Int64(deadline * 1000)
        timing.unreachableLimit = Int64(unreachable * 1000)
        timing.retry.retryTimeout = retryTimeout
        timing.rebootGrace = Int64(rebootGrace * 1000)
        let adapter = HTTPUploadAdapter(
            timing: timing, requestTimeout: .milliseconds(Int64(requestTimeout * 1000)),
            versionPath: versionPath, credentials: try credentials())
        let (host, port) = PushTarget.hostAndPort(address, defaultPort: 80)
        var target = PushTarget(id: id, family: family, host: host, port: port, proxy: proxy, options: try Self.options(deviceOptions))
        if let dialect { target.options["dialect"] = dialect }
        if let uploadPath { target.options["upload_path"] = uploadPath }
        let file = file ?? ""
        let length = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.int64Value ?? 0
        let name = URL(fileURLWithPath: file).lastPathComponent
        let image = PushImage(path: name, sha256: "", length: length, version: version, file: file, url: nil, variant: variant)
        try await report(adapter, image: image, target: target)
    }

    func pushArduinoOTA() async throws {
        var timing = ArduinoOTAPush.Timing()
        timing.pollInterval = Int64(pollMS)
        timing.deadline = Int64(deadline * 1000)
        timing.unreachableLimit = Int64(unreachable * 1000)
        timing.retry.retryTimeout = retryTimeout
        timing.rebootGrace = Int64(rebootGrace * 1000)
        var timeouts = ArduinoOTAPush.Timeouts()
        timeouts.reply = Int64(requestTimeout * 1000)
        timeouts.connectBack = timeouts.reply
        timeouts.stall = timeouts.reply
        timeouts.result = Int64(resultTimeout * 1000)
        let adapter = ArduinoOTAAdapter(
            timing: timing, timeouts: timeouts, requestTimeout: .milliseconds(Int64(requestTimeout * 1000)),
            dialect: ArduinoOTADialect(rawValue: dialect ?? "arduino") ?? .arduino, versionPort: versionPort, versionPath: versionPath,
            credentials: try credentials())
        let (host, port) = PushTarget.hostAndPort(address, defaultPort: ArduinoOTAAdapter.defaultPort(variant: deviceVariant ?? variant))
        let target = PushTarget(
            id: id, family: family, host: host, port: port, variant: deviceVariant, proxy: proxy,
            options: try Self.options(deviceOptions))
        let file = file ?? ""
        let length = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.int64Value ?? 0
        let name = URL(fileURLWithPath: file).lastPathComponent
        let image = PushImage(path: name, sha256: "", length: length, version: version, file: file, url: nil, variant: variant)
        try await report(adapter, image: image, target: target)
    }

    func report(_ adapter: some PushAdapter, image: PushImage, target: PushTarget) async throws {
        do throws(PushFailure) {
            let reported = try await adapter.push(image, to: target) { phase in Output.out("\(id): \(phase)") }
            Output.out(Output.jsonLine(["device": id, "outcome": "succeeded", "version": reported]))
        } catch {
            Output.out(Output.jsonLine(["device": id, "outcome": "failed", "kind": error.kind.rawValue, "reason": error.reason]))
            throw ExitCode(1)
        }
    }
}
