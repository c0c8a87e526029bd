/// ESP8266 NONOS SDK FOTA against a custom server (espressif/ESP8266_NONOS_SDK `upgrade.h`,
/// IoT_Demo `user_esp_platform.c`; the espconn upgrade library as carried in
/// nodemcu-firmware `app/upgrade/upgrade.c`; research notes §4 and the brief).
///
/// The application builds each request itself (raw text, IoT_Demo header block, `HTTP/1.0`,
/// `Host: <dotted IP>:<port>`), for the image of the partition it is *not* running
/// (`system_upgrade_userbin_check() == UPGRADE_FW_BIN1` → `user2.bin`, else `user1.bin`):
/// 1. `HEAD …/userN.bin?version=V` — the app reads `Content-Length: ` to size the flash erase
///    (a non-200 answer: nothing to install);
/// 2. `GET` the same URL — parsed by the library: the status code is *not* checked, the head
///    must contain `Content-Length` (exact case) and `Content-Length: ` (one space) gives
///    `sumlength`; every byte after `\r\n\r\n` is written; done when `totallength == sumlength`,
///    a connection drop earlier fails the upgrade. No chunked decoding, no decompression.
/// 3. `system_upgrade_reboot()`: boot.bin starts the other partition.
///
/// A power loss (or a dropped connection) starts over: the library keeps its progress
/// (`totallength`, `sumlength`) in RAM statics and has no resume.
struct FOTADevice: EmulatedDevice {
    let identity: DeviceIdentity
    private(set) var version: String
    /// 1 or 2: the partition the device runs.
    private(set) var runningSlot: Int
    private var faults: FaultState

    static let headBlock =
        "Connection: keep-alive\r\nCache-Control: no-cache\r\n"
        + "User-Agent: Mozilla/5.0 (Windows NT 5.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/30.0.1599.101 Safari/537.36 \r\n"
        + "Accept: */*\r\nAccept-Encoding: gzip,deflate,sdch\r\nAccept-Language: zh-CN,zh;q=0.8\r\n\r\n"

    init(identity: DeviceIdentity, settings: RunSettings) {
        self.identity = identity
        version = settings.version
        switch settings.fotaStartSlot {
        case .user1: runningSlot = 1
        case .user2: runningSlot = 2
        case .mixed: runningSlot = identity.index % 2 == 0 ? 1 : 2
        }
        faults = FaultState(plan: settings.faults, seed: settings.seed, device: identity.index)
    }

    /// The file the device asks for: the other partition's image.
    var wantedFile: String { runningSlot == 1 ? "user2.bin" : "user1.bin" }

    /// The request text as the IoT_Demo app formats it (`Host: IPSTR:%d`, always with the port).
    static func request(method: String, target: String, host: String, port: Int) -> [UInt8] {
        Array("\(method) \(target) HTTP/1.0\r\nHost: \(host):\(port)\r\n\(headBlock)".utf8)
    }

    mutating func poll(_ context: PollContext) async -> PollReport {
        var report = PollReport()
        report.reported = version
        // The app formats the version into the request as is (`version=%s`); only bytes that
        // would break the request line are escaped here.
        let target = "/v1/fota/\(identity.id)/\(wantedFile)?version=\(QueryEncoding.requestLineSafe(version))"
        let endpoint = context.endpoint(target: target, tls: false)
        do {
            // 1. HEAD: the app learns the length.
            let head = try await context.exchange(endpoint, request: Self.request(method: "HEAD", target: target, host: endpoint.host, port: endpoint.port)) {
                _, head in head
            }
            context.decided(status: head.status)
            guard head.status == 200 else {
                report.outcome = .noUpdate(reason: "HEAD \(wantedFile): \(head.status)")
                return finish(report, context)
            }
            guard let eraseLength = Self.sumLength(head), eraseLength > 0 else {
                report.outcome = .failed(stage: "check", reason: "HEAD \(wantedFile) has no usable 'Content-Length: '", code: nil)
                return finish(report, context)
            }
            // 2. GET: the library's parser.
            faults.beginAttempt(imageLength: eraseLength)
            var flash = FlashPartition(capacity: eraseLength, corruptAt: faults.corruptionOffset(imageLength: eraseLength))
            let request = Self.request(method: "GET", target: target, host: endpoint.host, port: endpoint.port)
            let getResult: String? = try await context.exchange(endpoint, request: request) { io, head in
                guard head.rawContains("Content-Length") else {
                    return "no 'Content-Length' in the first segment: the head would be written as image data"
                }
                guard let sumLength = Self.sumLength(head) else {
                    return "sumlength failed (no 'Content-Length: ' with one space)"
                }
                guard sumLength <= eraseLength else {
                    return "GET length \(sumLength) exceeds the \(eraseLength) bytes erased after HEAD"
                }
                var reader = BodyReader(imageOffset: 0, rate: faults.plan.rate)
                defer { context.bytes += reader.delivered }
                try await reader.read(&io, length: sumLength, faults: &faults) { chunk in
                    flash.write(chunk, at: flash.bytes.count)
                }
                return nil
            }
            if let problem = getResult {
                report.outcome = .failed(stage: "download", reason: problem, code: nil)
                return finish(report, context)
            }
            // 3. check_cb(UPGRADE_FLAG_FINISH) → system_upgrade_reboot → boot.bin checks the image.
            if let problem = FlashVerifier.problem(flash.bytes, chip: "esp8266") {
                report.outcome = .failed(stage: "boot", reason: "user\(3 - runningSlot).bin does not boot: \(problem)", code: nil)
                return finish(report, context)
            }
            let from = version
            version = context.settings.newVersion ?? FlashVerifier.embeddedVersion(flash.bytes) ?? "md5:" + String(ImageFacts.md5Hex(flash.bytes).prefix(12))
            runningSlot = 3 - runningSlot
            report.outcome = .updated(from: from, to: version)
        } catch let error as TransferError {
            switch error {
            case .powerLoss(let at): report.outcome = .powerLoss(atByte: at)
            default:
                report.outcome = .failed(
                    stage: context.decisionMS == nil ? "check" : "download",
                    reason: "upgrade failed (device_upgrade_failed): \(error)", code: nil)
            }
        } catch {
            report.outcome = .failed(stage: "check", reason: "\(error)", code: nil)
        }
        return finish(report, context)
    }

    /// `atoi` of the text after the first `Content-Length: ` up to `\r\n`, as the library reads it.
    static func sumLength(_ head: ResponseHead) -> Int? {
        let needle = Array("Content-Length: ".utf8)
        guard let at = WiPhoneRules.firstIndex(of: needle, in: head.raw) else { return nil }
        var i = at + needle.count
        var digits = ""
        while i < head.raw.count, head.raw[i] != 0x0D {
            digits.append(Character(Unicode.Scalar(head.raw[i])))
            i += 1
        }
        return atoi(digits)
    }

    /// C `atoi`: leading white space, optional sign, digits; 0 when none.
    static func atoi(_ text: String) -> Int {
        var value = 0
        var sign = 1
        var chars = Substring(text).drop { $0 == " " || $0 == "\t" }
        if let first = chars.first, first == "+" || first == "-" {
            sign = first == "-" ? -1 : 1
            chars = chars.dropFirst()
        }
        for c in chars {
            guard let digit = c.wholeNumberValue, c.isASCII else { break }
            value = value &* 10 &+ digit
        }
        return sign * value
    }

    private mutating func finish(_ report: PollReport, _ context: PollContext) -> PollReport {
        var report = report
        report.finish(context, faults: &faults)
        return report
    }
}
