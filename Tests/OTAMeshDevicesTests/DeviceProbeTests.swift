import OTAMeshCommon
import OTAMeshDevices
import Testing

/// What an mDNS announcement plus the probes say a device is: the push family that serves it,
/// its identity, hardware, variant and version; and what is not a push device at all.
@Suite("Device discovery probe")
struct DeviceProbeTests {
    typealias Request = DeviceProbe.Request

    static func http(_ name: String = "f3-panel-0", port: Int = 10_000, txt: [String: String] = [:]) -> DeviceProbe.Service {
        DeviceProbe.Service(type: "_http._tcp", name: name, address: "10.77.3.200", port: port, txt: txt)
    }

    /// A projectMM `/api/state` answer, trimmed to the FirmwareUpdate module.
    static let projectMMState = Array(
        """
        {"modules":[{"name":"FirmwareUpdate","type":"FirmwareUpdateModule","status":"idle","controls":[
        {"name":"version","type":"display","value":"1.4.0"},{"name":"firmware","type":"display","value":"esp32-eth"}]}]}
        """.utf8)

    @Test("an _http._tcp service answering /api/state is a projectMM device with its version and variant")
    func projectMM() throws {
        let service = Self.http()
        let requests = DeviceProbe.requests(for: service)
        #expect(requests.contains(Request(port: 10_000, path: "/api/state")))
        let device = try DeviceProbe.classify(service, answers: [Request(port: 10_000, path: "/api/state"): (200, Self.projectMMState)]).get()
        #expect(device.family == .projectMM)
        #expect(device.id == "mdns:f3-panel-0")
        #expect(device.address == "10.77.3.200:10000")
        #expect(device.version == "1.4.0")
        #expect(device.variant == "esp32-eth")
        #expect(device.hardware == "esp32")
    }

    @Test("an upload form at /update is an http-upload device; its version comes from /version; 401 means a password")
    func uploadForm() throws {
        let service = Self.http("lamp", port: 80, txt: ["board": "nodemcuv2"])
        let form = Array("<form method='POST' enctype='multipart/form-data'><input type='file' name='firmware'></form>".utf8)
        let answers: DeviceProbe.Answers = [
            Request(port: 80, path: "/api/state"): (404, []),
            Request(port: 80, path: "/update"): (200, form),
            Request(port: 80, path: "/version"): (200, Array("{\"version\":\"2.1.0\"}".utf8)),
        ]
        let device = try DeviceProbe.classify(service, answers: answers).get()
        #expect(device.family == .httpUpload)
        #expect(device.version == "2.1.0")
        #expect(device.hardware == "esp8266")
        var guarded = answers
        guarded[Request(port: 80, path: "/update")] = (401, [])
        let locked = try DeviceProbe.classify(service, answers: guarded).get()
        #expect(locked.family == .httpUpload)
        #expect(locked.note.contains("password required"))
    }

    @Test("a web server that is neither is ignored with the reason; an unreachable one too")
    func otherWebServer() {
        let service = Self.http("printer", port: 80)
        let answers: DeviceProbe.Answers = [
            Request(port: 80, path: "/api/state"): (404, []), Request(port: 80, path: "/update"): (404, []),
            Request(port: 80, path: "/version"): nil,
        ]
        guard case .failure(let ignored) = DeviceProbe.classify(service, answers: answers) else {
            Issue.record("a printer was taken for a push device")
            return
        }
        #expect(ignored.description.contains("printer"))
        #expect(ignored.description.contains("not a push device"))
        #expect((try? DeviceProbe.classify(service, answers: [:]).get()) == nil)
    }

    @Test("_arduino._tcp is ArduinoOTA: board → hardware, TXT version, password flag, version port")
    func arduino() throws {
        let service = DeviceProbe.Service(
            type: "_arduino._tcp", name: "esp-kitchen", address: "10.0.0.9", port: 3232,
            txt: ["board": "esp32dev", "auth_upload": "yes", "version": "3.2.1", "http_port": "8080"])
        // The TXT says the version; the probe still asks the endpoint a push would confirm by.
        #expect(DeviceProbe.requests(for: service) == [Request(port: 8080, path: "/version")])
        let device = try DeviceProbe.classify(service, answers: [Request(port: 8080, path: "/version"): (200, Array("3.2.1\n".utf8))]).get()
        #expect(device.family == .arduinoOTA)
        #expect(device.address == "10.0.0.9:3232")
        #expect(device.hardware == "esp32")
        #expect(device.version == "3.2.1")
        #expect(device.options == ["dialect": "arduino", "version_port": "8080"])
        #expect(device.note.contains("password required"))
    }

    @Test("a device whose version no endpoint answers is registered with confirm=none: a push to it could not be confirmed")
    func unconfirmable() throws {
        // Plain ArduinoOTA announces board and auth only; nothing answers GET :80/version.
        let plain = DeviceProbe.Service(
            type: "_arduino._tcp", name: "esp-garage", address: "10.0.0.8", port: 8266,
            txt: ["board": "nodemcuv2", "auth_upload": "no", "tcp_check": "no", "ssh_upload": "no"])
        #expect(DeviceProbe.requests(for: plain) == [Request(port: 80, path: "/version")])
        let device = try DeviceProbe.classify(plain, answers: [Request(port: 80, path: "/version"): nil]).get()
        #expect(device.options == ["dialect": "arduino", "confirm": "none"] && device.version == nil)
        #expect(device.note.contains("no version at GET :80/version: confirm=none"))
        // Its sketch serves the version on port 80 after all: pushable.
        let served = try DeviceProbe.classify(plain, answers: [Request(port: 80, path: "/version"): (200, Array("1.0.0".utf8))]).get()
        #expect(served.options == ["dialect": "arduino"] && served.version == "1.0.0")

        // An upload form without /version: the same.
        let form = Array("<form method='POST' enctype='multipart/form-data'><input type='file' name='firmware'></form>".utf8)
        let upload = try DeviceProbe.classify(
            Self.http("lamp", port: 80),
            answers: [
                Request(port: 80, path: "/update"): (200, form),
                Request(port: 80, path: "/version"): (404, []),
            ]
        ).get()
        #expect(upload.family == .httpUpload && upload.options == ["confirm": "none"])
    }

    @Test("_esphomelib._tcp is the esphome dialect, identified by its MAC; OTA on the platform's port, not the announced API port")
    func esphome() throws {
        // As ESPHome announces itself: the API port, ESPHome's own version, the project's version.
        let service = DeviceProbe.Service(
            type: "_esphomelib._tcp", name: "livingroom", address: "fd00::9", port: 6053,
            txt: [
                "mac": "AABBCCDDEEFF", "platform": "ESP32", "board": "esp32dev", "version": "2024.6.1",
                "project_name": "acme.lamp", "project_version": "1.4.0", "network": "wifi",
            ])
        #expect(DeviceProbe.requests(for: service) == [Request(port: 80, path: "/version")])
        let device = try DeviceProbe.classify(service, answers: [:]).get()
        #expect(device.id == "aa:bb:cc:dd:ee:ff")
        #expect(device.address == "[fd00::9]:3232")
        #expect(device.options == ["dialect": "esphome", "confirm": "none"], "project_version names the version, but nothing a push could poll")
        #expect(device.version == "1.4.0", "the firmware's version, not ESPHome's 2024.6.1")
        #expect(device.hardware == "esp32" && device.variant == "esp32dev")
        #expect(device.note.contains("ESPHome 2024.6.1") && device.note.contains("API port 6053") && device.note.contains("OTA port 3232"))

        // ESP8266 without a project version: OTA on 8266; the version from the firmware's own
        // /version when it announces http_port, else unknown (never ESPHome's version).
        let plain = DeviceProbe.Service(
            type: "_esphomelib._tcp", name: "porch", address: "10.0.0.7", port: 6053,
            txt: ["mac": "112233445566", "platform": "ESP8266", "board": "nodemcuv2", "version": "2024.6.1"])
        #expect(DeviceProbe.requests(for: plain) == [Request(port: 80, path: "/version")])
        let unknown = try DeviceProbe.classify(plain, answers: [:]).get()
        #expect(unknown.address == "10.0.0.7:8266" && unknown.version == nil && unknown.hardware == "esp8266")
        var served = plain
        served.txt["http_port"] = "80"
        #expect(DeviceProbe.requests(for: served) == [Request(port: 80, path: "/version")])
        let answered = try DeviceProbe.classify(
            served, answers: [Request(port: 80, path: "/version"): (200, Array(#"{"id":"text_sensor-fw","state":"1.3.9","value":"1.3.9"}"#.utf8))]
        ).get()
        #expect(answered.version == "1.3.9" && answered.options == ["dialect": "esphome", "version_port": "80"])

        for (platform, port) in [("RP2", 2040), ("BK7231N", 8892), ("RTL8710BN", 8892)] {
            var other = plain
            other.txt["platform"] = platform
            #expect(try DeviceProbe.classify(other, answers: [:]).get().address == "10.0.0.7:\(port)", "\(platform)")
        }
    }

    @Test("hostile TXT and bodies yield no version rather than garbage", arguments: ["", "1.0 <script>", String(repeating: "9", count: 65)])
    func hostileVersion(_ text: String) throws {
        let service = DeviceProbe.Service(type: "_arduino._tcp", name: "x", address: "10.0.0.1", port: 8266, txt: ["version": text])
        #expect(try DeviceProbe.classify(service, answers: [:]).get().version == nil)
    }
}
