import ArgumentParser
import NIOCore
import NIOPosix
import NIOSSL
import OTAMeshCommon

#if canImport(Glibc)
import Glibc
#endif

/// `run`: emulate N devices of one family against a gateway, one JSON line per event on stdout
/// and a summary line at the end. Exit 0 when the run's goal was met.
struct RunFleet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Emulate many devices of one family against a gateway (JSON lines on stdout).",
        discussion: """
            Families and what they do on the wire:
              esp8266-httpupdate, esp32-httpupdate  Arduino httpUpdate: GET /v1/esp/update (HTTP/1.0, x-ESP8266-*/x-ESP32-*)
              esp-https-ota   ESP-IDF esp_https_ota, partial download: HEAD, then Range GETs of --max-request-size (HTTPS)
              esp8266-fota    NONOS FOTA: HEAD then GET /v1/fota/{id}/user1.bin|user2.bin (raw request text)
              wiphone         GET /v1/wiphone/{id}/WiPhone-phone.ini (HTTPS), then HTTPUpdate of the ini's url
              generic         GET /v1/devices/{id}/update (JSON manifest), GET url, check size + SHA-256
            Events: poll, no-update, updated, failed, skipped, power-loss, done; then one summary line.
            Exit status 0 when the goal was met (--until-updated: every device updated and then
            told "no update"; otherwise: no device ended failed), 1 otherwise.
            """)

    @Option(help: "Device family: \(DeviceFamily.names(DeviceFamily.emulated)).")
    var family: String
    @Option(help: "Number of devices.") var count = 1
    @Option(help: "The gateway's plain-HTTP device URL.") var gateway = "http://127.0.0.1:8070"
    @Option(name: .customLong("tls-gateway"), help: "The gateway's HTTPS device URL (esp-https-ota, wiphone).")
    var tlsGateway: String?
    @Option(help: "PEM CA certificate(s) the HTTPS families trust (the site CA).") var ca: String?
    @Flag(name: .customLong("insecure-http"), help: "Let esp-https-ota and wiphone use the plain gateway (CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP).")
    var insecureHTTP = false
    @Option(help: "The version the devices run at start.") var version = "1.0.0"
    @Option(help: "Hardware / chip (default: esp8266 for the ESP8266 families, esp32 otherwise).") var hardware: String?
    @Option(help: "Seconds between polls.") var interval = 1.0
    @Option(help: "Polls per device (default 1 unless --until-updated or --deadline).") var polls: Int?
    @Flag(name: .customLong("until-updated"), help: "Poll until every device has installed an update and then been told there is none.")
    var untilUpdated = false
    @Option(name: .customLong("target-version"), help: "With --until-updated: a device already running this version counts as done once told \"no update\".")
    var targetVersion: String?
    @Option(help: "Stop the run after this many seconds (goal not met if devices are still going).") var deadline: Double?
    @Option(name: .customLong("max-request-size"), help: "esp-https-ota max_http_request_size (partial download chunk).")
    var maxRequestSize = HTTPSOTAPlan.defaultRequestSize
    @Flag(
        name: .customLong("ota-resumption"), help: "esp-https-ota: emulate ota_resumption (resume from the last completed request after a drop or power loss).")
    var otaResumption = false
    @Option(help: "Device read timeout in seconds (no bytes for this long fails the request).") var timeout = 5.0

    @Option(name: .customLong("drop-at-byte"), help: "Fault: close the connection after N image bytes of a download.")
    var dropAtByte: Int?
    @Option(help: "Fault: how many downloads to cut (random offsets from --seed unless --drop-at-byte).") var drops: Int?
    @Option(name: .customLong("stall-at-byte"), help: "Fault: stop reading after N image bytes (once per device)...") var stallAtByte: Int?
    @Option(name: .customLong("stall-seconds"), help: "...for this many seconds.") var stallSeconds = 10.0
    @Option(help: "Fault: read at most this many body bytes per second (slow link).") var rate: Int?
    @Flag(name: .customLong("corrupt-flash"), help: "Fault: flip one byte while writing the image to flash (once per device).")
    var corruptFlash = false
    @Option(name: .customLong("power-loss-at-byte"), help: "Fault: lose power after N image bytes (once per device).")
    var powerLossAtByte: Int?
    @Option(help: "Seed for identities' images and random fault offsets.") var seed: UInt64 = 1

    @Option(
        name: .customLong("mac-base"),
        help: "First device's MAC (default: 5C:CF:7F ESP8266, 24:0A:C4 otherwise, then 3 bytes from this process id, so two fleets never share a MAC).")
    var macBase: String?
    @Option(name: .customLong("free-space"), help: "httpUpdate x-*-free-space (default 1044480 ESP8266, 1310720 ESP32).")
    var freeSpace: Int?
    @Option(name: .customLong("chip-size"), help: "httpUpdate x-*-chip-size (flash size).") var chipSize = 4 << 20
    @Option(name: .customLong("sdk-version"), help: "httpUpdate x-*-sdk-version.") var sdkVersion: String?
    @Option(name: .customLong("new-version"), help: "Version a device reports after installing an image that carries none (ESP8266 images).")
    var newVersion: String?
    @Option(name: .customLong("fota-slot"), help: "esp8266-fota: partition the devices run at start: user1, user2, mixed.")
    var fotaSlot = "user1"
    @Option(
        help: ArgumentHelp(
            "httpUpdate families: the sketch's filesystem, checked after the firmware (updateFS) and mounted when it arrives.",
            discussion:
                "spiffs:size=0x20000,page-size=256,block-size=4096[,obj-name-len=32,meta-len=4,use-magic=1,use-magic-len=1,aligned-obj-ix-tables=0][,config=/config.json] or littlefs:size=…,block-size=4096[,name-max=32]"
        ))
    var filesystem: String?
    @Option(name: .customLong("secret-key"), help: "A configuration key reported only as set (a password); repeatable.") var secretKeys: [String] = []
    @Option(name: .customLong("gateway-token"), help: "ddi: the site's GatewayToken every device presents (default: anonymous).")
    var gatewayToken: String?
    @Option(help: "ddi: the tenant in every path.") var tenant = "DEFAULT"
    @Flag(help: "Print only updated / failed / power-loss / done events and the summary.") var quiet = false
    @Flag(help: "Start every device at once (default: first polls spread over one interval).") var burst = false

    func validate() throws {
        guard let known = DeviceFamily(known: family), DeviceFamily.emulated.contains(known) else {
            throw ValidationError("unknown --family '\(family)' (known: \(DeviceFamily.names(DeviceFamily.emulated)))")
        }
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        guard interval >= 0 else { throw ValidationError("--interval must be ≥ 0") }
        guard timeout > 0 else { throw ValidationError("--timeout must be > 0") }
        guard maxRequestSize >= 1 else { throw ValidationError("--max-request-size must be ≥ 1") }
        if let polls, polls < 1 { throw ValidationError("--polls must be at least 1") }
        if let drops, drops < 0 { throw ValidationError("--drops must be ≥ 0") }
        if let rate, rate < 1 { throw ValidationError("--rate must be ≥ 1") }
        guard Endpoint.parse(gateway).map({ !$0.isTLS }) == true else { throw ValidationError("--gateway must be an http:// URL") }
        if let tlsGateway, Endpoint.parse(tlsGateway)?.isTLS != true { throw ValidationError("--tls-gateway must be an https:// URL") }
        if let macBase, DeviceIdentity.parseMAC(macBase) == nil { throw ValidationError("--mac-base must be a MAC such as AA:BB:CC:00:00:00") }
        guard FOTASlotChoice(rawValue: fotaSlot) != nil else { throw ValidationError("--fota-slot must be user1, user2 or mixed") }
        let family = DeviceFamily(rawValue: family)
        if gatewayToken != nil, family != .ddi { throw ValidationError("--gateway-token is for --family ddi") }
        if let gatewayToken, gatewayToken.isEmpty || gatewayToken.contains(where: { $0.isWhitespace || $0.isNewline }) {
            throw ValidationError("--gateway-token must be one word")
        }
        if family.usesTLS && !insecureHTTP {
            guard tlsGateway != nil, ca != nil else {
                throw ValidationError("\(family.rawValue) talks HTTPS: give --tls-gateway URL and --ca FILE (or --insecure-http)")
            }
        }
    }

    func run() async throws {
        let family = DeviceFamily(rawValue: family)
        var faults = FaultPlan()
        faults.dropAtByte = dropAtByte
        faults.drops = drops ?? (dropAtByte == nil ? 0 : 1)
        faults.stallAtByte = stallAtByte
        faults.stallSeconds = stallSeconds
        faults.rate = rate
        faults.corruptFlash = corruptFlash
        faults.powerLossAtByte = powerLossAtByte
        let isESP8266 = family == .esp8266HTTPUpdate || family == .esp8266FOTA
        let defaultBase = DeviceIdentity.defaultBase(esp8266: isESP8266, processID: getpid())
        var fileSystem: DeviceFilesystem?
        if let filesystem {
            guard family == .esp8266HTTPUpdate || family == .esp32HTTPUpdate else {
                throw ValidationError("--filesystem is for esp8266-httpupdate and esp32-httpupdate (their sketches call updateFS)")
            }
            do { fileSystem = try DeviceFilesystem.parse(filesystem, secretKeys: Set(secretKeys)) } catch { throw ValidationError("--filesystem: \(error)") }
        }
        var settings = RunSettings(
            family: family,
            gateway: Endpoint.parse(gateway)!,
            tlsGateway: insecureHTTP ? nil : tlsGateway.flatMap(Endpoint.parse),
            insecureHTTP: insecureHTTP,
            version: version,
            hardware: hardware ?? (isESP8266 ? "esp8266" : "esp32"),
            timeout: .milliseconds(Int64(timeout * 1000)),
            maxRequestSize: maxRequestSize,
            otaResumption: otaResumption,
            faults: faults,
            seed: seed,
            macBase: DeviceIdentity.parseMAC(macBase ?? defaultBase)!,
            freeSpace: freeSpace,
            chipSize: chipSize,
            sdkVersion: sdkVersion,
            newVersion: newVersion,
            fotaStartSlot: FOTASlotChoice(rawValue: fotaSlot)!)
        settings.filesystem = fileSystem
        settings.ddiAuthorization = gatewayToken.map { "GatewayToken \($0)" }
        settings.ddiTenant = tenant

        var tls: NIOSSLContext?
        if let ca, family.usesTLS || family == .generic {
            do {
                tls = try Transport.tlsContext(caFile: ca)
            } catch {
                throw ValidationError("cannot load --ca \(ca): \(error)")
            }
        }
        let transport = Transport(
            group: MultiThreadedEventLoopGroup.singleton, tls: tls,
            connectTimeout: .milliseconds(Int64(timeout * 1000)))
        let sink = EventSink(quiet: quiet)
        let fleet = Fleet(
            settings: settings, count: count, interval: .milliseconds(Int64(interval * 1000)),
            polls: polls ?? (untilUpdated || deadline != nil ? nil : 1),
            untilUpdated: untilUpdated, targetVersion: targetVersion, stagger: !burst,
            deadline: deadline.map { .milliseconds(Int64($0 * 1000)) },
            transport: transport, sink: sink)
        let result = await fleet.run()

        let totals = sink.snapshot()
        let sorted = totals.latencies.sorted()
        let goalMet = untilUpdated ? (result.done == count && !result.timedOut) : (result.failed == 0 && !result.timedOut)
        var summary = JSONLine()
        summary.add("summary", true)
        summary.add("family", family.rawValue)
        summary.add("devices", count)
        summary.add("updated", result.updated)
        summary.add("failed", result.failed)
        if untilUpdated { summary.add("done", result.done) }
        summary.addAlways("p50_ms", Percentiles.value(sorted, 50))
        summary.addAlways("p99_ms", Percentiles.value(sorted, 99))
        summary.add("polls", totals.polls)
        summary.add("failures", totals.failures)
        summary.add("requests", totals.requests)
        summary.add("bytes", totals.bytes)
        summary.add("elapsed_s", PollContext.ms(result.elapsed) / 1000)
        if result.timedOut { summary.add("deadline_reached", true) }
        summary.add("goal_met", goalMet)
        sink.write(summary.text)
        if !goalMet { throw ExitCode(1) }
    }
}
