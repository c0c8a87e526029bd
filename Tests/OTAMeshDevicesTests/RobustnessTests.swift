import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout
import PropertyBased
import Testing

/// Devices answer with whatever their firmware (or a broken one, or anything else on the LAN)
/// sends. Whatever arrives, in whatever order: the parsers read it or say why not, and every push
/// state machine keeps the laws a rollout counts on — one outcome at most, nothing after it, and
/// success only when the device itself reported the image's version.
@Suite("push robustness")
struct PushRobustnessTests {
    typealias RNG = any SeededRandomNumberGenerator

    static func pick<T>(_ items: [T], _ rng: inout RNG) -> T { items.randomElement(using: &rng)! }

    static func bytes(_ rng: inout RNG, upTo count: Int = 64) -> [UInt8] {
        (0..<Int.random(in: 0...count, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    static let words = [
        "OK", "ERR", "AUTH", "FAIL", "Update Success! Rebooting...", "Update error: ERROR[4]: x", "200", "1024",
        "{", "}", "\"version\"", "\"status\"", ":", ",", "\"2.0.0\"", "\"1.0.0\"", "null", "\n", "\r\n", " ", "<html>",
        "Authentication Failed", "\u{0}", "ü", "99999999999999999999", "-1", "0",
    ]

    /// Text from the device: near-miss protocol words, or random bytes read as UTF-8.
    static func text(_ rng: inout RNG) -> String {
        Bool.random(using: &rng)
            ? (0..<Int.random(in: 0...6, using: &rng)).map { _ in pick(words, &rng) }.joined(separator: pick(["", " ", "\n"], &rng))
            : String(decoding: bytes(&rng), as: UTF8.self)
    }

    static let versions = ["2.0.0", "1.0.0", "", "2.0.0 ", "2.0.0-rc1", "v2.0.0", "9.9.9"]
    static let variants: [String?] = ["esp32", "esp32-eth", "esp32s3", "esp8266", nil, ""]
    static let statuses = [200, 202, 204, 301, 400, 401, 403, 404, 500, 501, 503, 0, -1, 999]

    static let image = PushImage(
        path: "lamp/esp32/2.0.0.bin", sha256: "ab", length: 1000, version: "2.0.0", file: "/dev/null",
        url: "http://10.0.0.1:8070/v1/targets/lamp/esp32/2.0.0.bin", variant: "esp32")
    static func device(_ family: DeviceFamily) -> PushTarget {
        PushTarget(id: "d-1", family: family, host: "10.0.1.6", port: 80, variant: "esp32", version: "1.0.0")
    }

    /// How a machine ended.
    enum Ending: Equatable {
        case succeeded(String)
        case failed(PushFailure)
    }

    /// How the generated pushes ended, so a run shows it reached both outcomes (else the laws
    /// were never put to the test).
    struct Tally {
        var succeeded = 0
        var failed = 0
        var open = 0
        mutating func add(_ laws: Laws) {
            switch laws.ending {
            case .succeeded?: succeeded += 1
            case .failed?: failed += 1
            case nil: open += 1
            }
        }
    }

    /// The laws, checked after each event: `reported` is the version the event carried (if any).
    struct Laws {
        var reported = Set<String>()
        var ending: Ending?

        mutating func check(actions: Int, endings: [Ending], reported version: String?, step: Int, machine: String) {
            if let version { reported.insert(version) }
            if ending != nil {
                #expect(actions == 0, "\(machine): step \(step) acted after its outcome \(String(describing: ending))")
                return
            }
            #expect(endings.count <= 1, "\(machine): two outcomes at once: \(endings)")
            guard let first = endings.first else { return }
            ending = first
            switch first {
            case .succeeded(let version):
                #expect(version == PushRobustnessTests.image.version, "\(machine): succeeded on \(version)")
                #expect(reported.contains(version), "\(machine): succeeded on \(version) the device never reported")
            case .failed(let failure):
                #expect(!failure.reason.isEmpty, "\(machine): a failure without words")
            }
        }
    }

    /// The time before an event: mostly small steps, sometimes past any deadline.
    static func step(_ rng: inout RNG) -> Int64 {
        Int.random(in: 0..<20, using: &rng) == 0 ? Int64.random(in: 100_000...2_000_000, using: &rng) : Int64.random(in: 0...3000, using: &rng)
    }

    /// A third of the runs: random events; the rest: the protocol's good path with events dropped
    /// and random ones slipped in, so runs also get deep into each protocol (and to success).
    static func mixed<Event>(_ path: [Event], _ rng: inout RNG, random: (inout RNG) -> Event) -> [(Event, Int64)] {
        if Int.random(in: 0..<3, using: &rng) == 0 {
            return (0..<Int.random(in: 1...40, using: &rng)).map { _ in (random(&rng), step(&rng)) }
        }
        var events: [(Event, Int64)] = []
        for event in path {
            if Int.random(in: 0..<8, using: &rng) == 0 { events.append((random(&rng), step(&rng))) }
            if Int.random(in: 0..<20, using: &rng) != 0 { events.append((event, Int64.random(in: 0...1500, using: &rng))) }
        }
        return events
    }

    /// Feeds one generated push to a machine (`handle`), checking the laws after every event.
    static func drive<Event, Action>(
        _ events: [(Event, Int64)], machine: String, handle: (Event, Int64) -> [Action],
        ending: (Action) -> Ending?, reported: (Event) -> String?
    ) -> Laws {
        var laws = Laws()
        var now: Int64 = 0
        for (step, (event, wait)) in events.enumerated() {
            now += wait
            let actions = handle(event, now)
            laws.check(actions: actions.count, endings: actions.compactMap(ending), reported: reported(event), step: step, machine: machine)
        }
        return laws
    }

    static func projectMMEvent(_ rng: inout RNG) -> ProjectMMPush.Event {
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: .started
        case 1:
            .status(
                ProjectMMStatus(
                    phase: .init(pick(["idle", "starting", "downloading", "flashing", "rebooting", "error", "x", ""], &rng)),
                    bytes: Int64.random(in: -5...2000, using: &rng), total: pick([0, 1000, -1, .max], &rng),
                    version: pick(versions, &rng), firmware: pick(variants, &rng)))
        case 2: .statusFailed(text(&rng))
        case 3: .posted(status: pick(statuses, &rng), body: text(&rng))
        case 4: .postFailed(text(&rng))
        default: .tick
        }
    }

    static let projectMMEvents = Generator<[(ProjectMMPush.Event, Int64)], Shrink.None<[(ProjectMMPush.Event, Int64)]>> { rng in
        func state(_ phase: String, _ bytes: Int64, version: String) -> ProjectMMPush.Event {
            .status(ProjectMMStatus(phase: .init(phase), bytes: bytes, total: 1000, version: version, firmware: "esp32"))
        }
        let path: [ProjectMMPush.Event] = [
            .started, state("idle", 0, version: "1.0.0"), .posted(status: 202, body: "{\"ok\":true}"), .tick,
            state("downloading", 500, version: "1.0.0"), .tick, state("rebooting", 1000, version: "1.0.0"),
            .statusFailed("connection refused"), .tick, state("idle", 0, version: "2.0.0"),
        ]
        return mixed(path, &rng, random: projectMMEvent)
    }

    @Test("projectMM: any answers in any order keep the laws")
    func projectMM() async {
        var tally = Tally()
        await propertyCheck(count: 800, input: Self.projectMMEvents) { events in
            var push = ProjectMMPush(image: Self.image, target: Self.device(.projectMM), now: 0)
            tally.add(
                Self.drive(
                    events, machine: "projectmm", handle: { push.handle($0, now: $1) },
                    ending: { action in
                        switch action {
                        case .succeeded(let version): .succeeded(version)
                        case .failed(let failure): .failed(failure)
                        default: nil
                        }
                    }, reported: { if case .status(let status) = $0 { status.version } else { nil } }))
        }
        #expect(tally.succeeded > 0 && tally.failed > 0, "\(tally)")
    }

    static func uploadEvent(_ rng: inout RNG) -> HTTPUploadPush.Event {
        switch Int.random(in: 0..<11, using: &rng) {
        case 0: .started
        case 1: .startAnswered(status: pick(statuses, &rng), body: text(&rng))
        case 2: .startFailed(text(&rng))
        case 3: .sending
        case 4: .sent
        case 5: .uploaded(status: pick(statuses, &rng), body: text(&rng))
        case 6: .uploadFailed(text(&rng), sentBytes: pick([0, 1, 500, -1, .max], &rng))
        case 7: .imageUnreadable(text(&rng))
        case 8: .version(pick(versions, &rng))
        case 9: .versionFailed(text(&rng))
        default: .tick
        }
    }

    static let uploadEvents = Generator<[(HTTPUploadPush.Event, Int64)], Shrink.None<[(HTTPUploadPush.Event, Int64)]>> { rng in
        // One path for both dialects: update-server ignores the start's answer.
        let path: [HTTPUploadPush.Event] = [
            .started, .startAnswered(status: 200, body: "OK"), .sending, .sent,
            .uploaded(status: 200, body: pick(["OK", "Update Success! Rebooting..."], &rng)),
            .tick, .versionFailed("connection refused"), .tick, .version("2.0.0"),
        ]
        return mixed(path, &rng, random: uploadEvent)
    }

    @Test("HTTP upload, both dialects: any answers in any order keep the laws")
    func httpUpload() async {
        var tally = Tally()
        await propertyCheck(count: 800, input: Self.uploadEvents) { events in
            for dialect in HTTPUploadPush.Dialect.allCases {
                var push = HTTPUploadPush(image: Self.image, target: Self.device(.httpUpload), authenticates: false, dialect: dialect, now: 0)
                tally.add(
                    Self.drive(
                        events, machine: "http-upload \(dialect)", handle: { push.handle($0, now: $1) },
                        ending: { action in
                            switch action {
                            case .succeeded(let version): .succeeded(version)
                            case .failed(let failure): .failed(failure)
                            default: nil
                            }
                        }, reported: { if case .version(let version) = $0 { version } else { nil } }))
            }
        }
        #expect(tally.succeeded > 0 && tally.failed > 0, "\(tally)")
    }

    static func otaEvent(_ rng: inout RNG) -> ArduinoOTAPush.Event {
        switch Int.random(in: 0..<13, using: &rng) {
        case 0: .started
        case 1: .imageRead(.init(size: pick([1000, 0, -1, .max], &rng), md5: pick([md5, "", "zz"], &rng), chip: pick(variants, &rng)))
        case 2: .imageUnreadable(text(&rng))
        case 3: .listening(port: pick([0, 1, 40000, 65535, -1, 70000], &rng))
        case 4: .datagram(Bool.random(using: &rng) ? bytes(&rng) : Array(text(&rng).utf8))
        case 5: .connected
        case 6: .received(Bool.random(using: &rng) ? bytes(&rng) : Array(text(&rng).utf8))
        case 7: .sending
        case 8: .sent
        case 9: .closed(text(&rng), sentBytes: pick([0, 1, 1000, -1], &rng))
        case 10: .linkFailed(text(&rng))
        case 11: .version(pick(versions, &rng), variant: pick(variants, &rng))
        default: Bool.random(using: &rng) ? .tick : .versionFailed(text(&rng))
        }
    }

    static let md5 = "0123456789abcdef0123456789abcdef"

    static let otaEvents = Generator<[(ArduinoOTAPush.Event, Int64)], Shrink.None<[(ArduinoOTAPush.Event, Int64)]>> { rng in
        let facts = ArduinoOTAPush.Event.imageRead(.init(size: 1000, md5: md5, chip: "esp32"))
        let arduino: [ArduinoOTAPush.Event] =
            [.started, facts, .listening(port: 4321)]
            + (Bool.random(using: &rng) ? [.datagram(Array("AUTH \(String(repeating: "a1", count: 16))".utf8))] : [])
            + [
                .datagram(Array("OK".utf8)), .connected, .sending, .received(Array("1460".utf8)), .sent, .received(Array("1000OK".utf8)),
                .tick, .versionFailed("connection refused"), .tick, .version("2.0.0", variant: "esp32"),
            ]
        let esphome: [ArduinoOTAPush.Event] = [
            .started, facts, .connected, .received([0x00, 0x01]), .received([64, 65]), .received([66]),
            .received([67]), .sending, .sent, .received([68]), .received([69]), .tick, .version("2.0.0", variant: nil),
        ]
        return mixed(Bool.random(using: &rng) ? arduino : esphome, &rng, random: otaEvent)
    }

    @Test("ArduinoOTA, both dialects, with and without a password: any bytes in any order keep the laws")
    func arduinoOTA() async {
        var tally = Tally()
        await propertyCheck(count: 800, input: Self.otaEvents) { events in
            for dialect in [ArduinoOTADialect.arduino, .esphome] {
                for credentials in [nil, PushCredentials(username: "", password: "pw")] {
                    var push = ArduinoOTAPush(image: Self.image, target: Self.device(.arduinoOTA), dialect: dialect, credentials: credentials, now: 0)
                    tally.add(
                        Self.drive(
                            events, machine: "arduino-ota \(dialect)", handle: { push.handle($0, now: $1) },
                            ending: { action in
                                switch action {
                                case .succeeded(let version): .succeeded(version)
                                case .failed(let failure): .failed(failure)
                                default: nil
                                }
                            }, reported: { if case .version(let version, _) = $0 { version } else { nil } }))
                }
            }
        }
        #expect(tally.succeeded > 0 && tally.failed > 0, "\(tally)")
    }

    static func fetchEvent(_ rng: inout RNG) -> FetchURLPush.Event {
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: .started
        case 1: .answered(status: pick(statuses, &rng), body: text(&rng))
        case 2: .sendFailed(text(&rng))
        case 3: .version(.init(version: pick(versions, &rng), variant: pick(variants, &rng)))
        case 4: .versionFailed(text(&rng))
        default: .tick
        }
    }

    static let fetchEvents = Generator<[(FetchURLPush.Event, Int64)], Shrink.None<[(FetchURLPush.Event, Int64)]>> { rng in
        let path: [FetchURLPush.Event] = [
            .started, .answered(status: 202, body: "{\"ok\":true}"), .tick, .version(.init(version: "1.0.0")), .tick,
            .versionFailed("connection refused"), .tick, .version(.init(version: "2.0.0", variant: "esp32")),
        ]
        return mixed(path, &rng, random: fetchEvent)
    }

    @Test("fetch-URL: any answers in any order keep the laws")
    func fetchURL() async throws {
        let request = try FetchURLRequest(options: [:])
        var tally = Tally()
        await propertyCheck(count: 800, input: Self.fetchEvents) { events in
            var push = FetchURLPush(image: Self.image, target: Self.device(.fetchURL), request: request, authenticates: false, now: 0)
            tally.add(
                Self.drive(
                    events, machine: "fetch-url", handle: { push.handle($0, now: $1) },
                    ending: { action in
                        switch action {
                        case .succeeded(let version): .succeeded(version)
                        case .failed(let failure): .failed(failure)
                        default: nil
                        }
                    }, reported: { if case .version(let answer) = $0 { answer.version } else { nil } }))
        }
        #expect(tally.succeeded > 0 && tally.failed > 0, "\(tally)")
    }

    static let goodState =
        #"{"modules":[{"name":"FirmwareUpdate","type":"FirmwareUpdateModule","status":"idle","controls":[{"name":"version","value":"1.0.0"},{"name":"firmware","value":"esp32"}]}]}"#

    static let service = Generator<(DeviceProbe.Service, DeviceProbe.Answers), Shrink.None<(DeviceProbe.Service, DeviceProbe.Answers)>> { rng in
        let keys = ["board", "version", "mac", "auth_upload", "http_port", "platform", "chip", "x", ""]
        var txt: [String: String] = [:]
        for _ in 0..<Int.random(in: 0...5, using: &rng) {
            txt[pick(keys, &rng)] =
                pick(["esp32", "yes", "80", "-1", "99999999", "aa:bb:cc:dd:ee:ff", "2.0.0", "", "\u{0}"], &rng) + (Bool.random(using: &rng) ? text(&rng) : "")
        }
        let service = DeviceProbe.Service(
            type: pick(["_http._tcp", "_arduino._tcp", "_esphomelib._tcp", "_ipp._tcp", ""], &rng),
            name: pick(["lamp", "", "a b", "ü", String(repeating: "x", count: 300)], &rng),
            address: pick(["10.0.0.9", "fd00::9", "", "host"], &rng), port: pick([80, 3232, 0, -1, 70000], &rng), txt: txt)
        var answers: DeviceProbe.Answers = [:]
        for request in DeviceProbe.requests(for: service) where Bool.random(using: &rng) {
            // Half the answers are what a real device of the kind sends, so every family is reached.
            if Bool.random(using: &rng) {
                answers[request] = (
                    status: 200,
                    body: request.path == "/api/state"
                        ? Array(goodState.utf8)
                        : request.path == "/update" ? Array("<form method='POST'><input type='file' name='firmware'></form>".utf8) : Array("1.0.0\n".utf8)
                )
                continue
            }
            let body: [UInt8] =
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes(&rng, upTo: 300)
                case 1: Array(text(&rng).utf8)
                default: projectMMState(&rng)
                }
            answers[request] = Bool.random(using: &rng) ? (status: pick([200, 200, 200] + statuses, &rng), body: body) : nil
        }
        return (service, answers)
    }

    @Test("discovery probes: any announcement and any answers give a push device of a known family, or a reason to ignore it")
    func probes() async {
        var found = Set<DeviceFamily>()
        await propertyCheck(count: 1500, input: Self.service) { input in
            let (service, answers) = input
            switch DeviceProbe.classify(service, answers: answers) {
            case .success(let device):
                #expect(device.family.isPush && !device.id.isEmpty, "\(device)")
                found.insert(device.family)
            case .failure(let ignored):
                #expect(!ignored.reason.isEmpty)
            }
        }
        #expect(found == [.projectMM, .httpUpload, .arduinoOTA], "the runs reached every family discovery finds")
    }

    /// projectMM's `/api/state` with its values swapped for odd ones (huge, negative, wrong
    /// types, deep nesting), or cut short.
    static func projectMMState(_ rng: inout RNG) -> [UInt8] {
        let odd = [
            "1", "-1", "1e99", "-1e99", "9223372036854775807", "18446744073709551616", "0.5", "\"x\"", "null", "[]", "{}", "true",
            "{\"bytes\":1e300,\"total\":-5}", "{\"value\":\"7\",\"max\":[1]}",
        ]
        let text = ["\"esp32\"", "\"esp32-eth\"", "\"2.0.0\"", "\"\"", "1", "null", "[\"a\"]"]
        let children = Int.random(in: 0..<6, using: &rng) == 0 ? String(repeating: "{\"children\":[", count: 12) + String(repeating: "]}", count: 12) + "," : ""
        let json =
            "{\"modules\":[\(children){\"name\":\"System\",\"type\":\"SystemModule\",\"controls\":[{\"name\":\"firmware\",\"value\":\(pick(text, &rng))}]},"
            + "{\"name\":\"FirmwareUpdate\",\"type\":\(pick(["\"FirmwareUpdateModule\"", "\"FirmwareUpdateModule\"", "1", "null"], &rng)),"
            + "\"status\":\(pick(["\"downloading\"", "\"error: x\"", "\"\"", "3", "null"], &rng)),\"controls\":["
            + "{\"name\":\"version\",\"value\":\(pick(text, &rng))},"
            + "{\"name\":\"update_pct\",\"value\":\(pick(odd, &rng)),\"max\":\(pick(odd, &rng))}]}]}"
        let bytes = Array(json.utf8)
        return Int.random(in: 0..<5, using: &rng) == 0 ? Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng))) : bytes
    }

    static let answerBytes = Generator<[UInt8], Shrink.None<[UInt8]>> { rng in
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: bytes(&rng, upTo: 400)
        case 1: Array(text(&rng).utf8)
        default: projectMMState(&rng)
        }
    }

    @Test("device answers: projectMM state, version texts, OTA datagrams and image headers parse or are refused, never crash")
    func parsers() async {
        await propertyCheck(count: 3000, input: Self.answerBytes) { bytes in
            do throws(ProjectMMStatus.Unreadable) {
                let status = try ProjectMMStatus.parse(bytes)
                #expect(status.bytes >= 0 && status.total >= 0, "progress is never negative: \(status)")
            } catch {
                #expect(!error.reason.isEmpty)
            }
            let text = String(decoding: bytes, as: UTF8.self)
            if let version = HTTPUploadAdapter.version(fromBody: text) { #expect(!version.isEmpty) }
            _ = ArduinoOTAWire.reply(bytes)
            _ = ArduinoOTAWire.chip(ofHeader: bytes)
            for code in bytes.prefix(4) { _ = ArduinoOTAWire.esphomeError(code) }
        }
    }
}
