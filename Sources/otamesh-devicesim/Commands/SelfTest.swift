import ArgumentParser
import OTAMeshFirmware

/// `self-test`: checks the pure core (version rules, ini parsing, Range planning, request
/// bytes) against cases taken from the firmware sources, without a network. Exit 1 on any
/// mismatch. (The executable has no test target of its own; this keeps the rules checkable.)
struct SelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "self-test",
        abstract: "Check the emulator's firmware rules (compVersions, NanoIni, Range plans, request bytes).")

    func run() throws {
        var failures: [String] = []
        func expect<T: Equatable>(_ got: T, _ want: T, _ what: String) {
            if got != want { failures.append("\(what): got \(got), want \(want)") }
        }

        // compVersions (WiPhone ota.cpp).
        let versions: [(String, String, Int)] = [
            ("0.8.30", "0.8.31", -1), ("0.8.31", "0.8.30", 1), ("0.8.30", "0.8.30", 0),
            ("0.8.30", "0.8.30rc1", -1),  // rc counts as a 4th number: the rc is "newer"
            ("0.8.30rc1", "0.8.30", 1), ("0.8.30rc1", "0.8.30rc2", -1),
            ("1.0.0", "0", 1), ("0.8.30", "garbage", 1), ("garbage", "0.0.1", -1),
            ("0.8.30db", "0.8.30db", 0), ("0.8.31db", "0.8.30", -1), ("0.8.30", "0.9db", -1),
            ("1.2", "1.2.0", 0), (" 1.2.3", "1.2.3", 0), ("1.2.3", "1.2.3-beta", 0),
            ("1.2.3", "1.2.4-beta", -1), ("99999999999.0.0", "4294967295.0.0", 0),
            ("-1.0.0", "4294967295.0.0", 0), ("2.0.0", "10.0.0", -1),
        ]
        for (a, b, want) in versions { expect(WiPhoneRules.compare(a, b), want, "compVersions(\(a), \(b))") }

        // loadIniFile + NanoIni section 0.
        func response(_ body: String, status: String = "200 OK") -> [UInt8] {
            Array("HTTP/1.1 \(status)\r\nContent-Length: \(body.utf8.count)\r\nContent-Type: text/plain\r\n\r\n\(body)".utf8)
        }
        func manifest(_ raw: [UInt8]) -> String {
            guard let m = WiPhoneRules.manifest(fromResponse: raw) else { return "-404" }
            return "\(m.version)|\(m.url)"
        }
        expect(manifest(response("version=0.8.31\nurl=https://h/f.bin\n")), "0.8.31|https://h/f.bin", "LF ini")
        expect(manifest(response("version=0.8.31\r\nurl=https://h/f.bin\r\n")), "0.8.31|https://h/f.bin", "CRLF ini")
        expect(manifest(response("[firmware]\nversion=0.8.31\nurl=https://h/f.bin\n")), "0|0", "ini with a section header first")
        expect(manifest(response("version = 0.8.31\nurl=x\n")), "0|x", "spaces around = (key 'version ')")
        expect(manifest(response("version=0.8.31 \nurl=x\n")), "0.8.31 |x", "trailing space kept")
        expect(manifest(response("")), "0|0", "empty body")
        expect(manifest(response("url=a\nversion=1\n[x]\nversion=2\n")), "1|a", "section 0 only")
        expect(manifest(response("version=1\nversion=2\nurl=a\n")), "1|a", "first key wins")
        expect(manifest(response("not found", status: "404 Not Found")), "-404", "404 status line")
        expect(manifest(response("=1\nversion=3\nurl=u\n")), "3|u", "empty key ignored")

        // esp_https_ota Range plan.
        expect(HTTPSOTAPlan.allRanges(imageLength: 1000, maxRequestSize: 65536), [nil], "small image: no Range")
        expect(HTTPSOTAPlan.allRanges(imageLength: 65536, maxRequestSize: 65536), [nil], "image == max: no Range")
        expect(HTTPSOTAPlan.allRanges(imageLength: 65537, maxRequestSize: 65536), ["bytes=0-65535", "bytes=65536-"], "max + 1")
        expect(
            HTTPSOTAPlan.allRanges(imageLength: 150_000, maxRequestSize: 65536),
            ["bytes=0-65535", "bytes=65536-131071", "bytes=131072-"], "three requests")
        expect(
            HTTPSOTAPlan.allRanges(imageLength: 200_000, maxRequestSize: 65536),
            ["bytes=0-65535", "bytes=65536-131071", "bytes=131072-196607", "bytes=196608-"], "four requests")
        expect(
            HTTPSOTAPlan.allRanges(imageLength: 150_000, maxRequestSize: 65536, resumeAt: 131072),
            ["bytes=131072-150000"], "resume: a last first range ends at image_length")
        expect(
            HTTPSOTAPlan.allRanges(imageLength: 150_000, maxRequestSize: 65536, resumeAt: 65536),
            ["bytes=65536-131071", "bytes=131072-"], "resume mid-image")
        expect(HTTPSOTAPlan.resumeOffset(lastCompleteRequestEnd: 512), 0, "resume below IMAGE_HEADER_SIZE")

        // Request bytes.
        let identity = DeviceIdentity(index: 1, base: [0x5C, 0xCF, 0x7F, 0x00, 0x00, 0xFF])
        expect(identity.macUpper, "5C:CF:7F:00:01:00", "MAC from index")
        expect(identity.esp8266SoftAPMAC, "5E:CF:7F:00:01:00", "ESP8266 soft-AP MAC")
        expect(identity.esp8266ChipID, "256", "ESP8266 chip id")
        let gateway = Endpoint.parse("http://127.0.0.1:18070")!
        expect(
            String(decoding: FOTADevice.request(method: "HEAD", target: "/v1/fota/x/user2.bin?version=1", host: "127.0.0.1", port: 80), as: UTF8.self)
                .hasPrefix("HEAD /v1/fota/x/user2.bin?version=1 HTTP/1.0\r\nHost: 127.0.0.1:80\r\nConnection: keep-alive\r\n"), true, "FOTA request")
        expect(
            String(decoding: HTTPSOTADevice.request(method: "GET", endpoint: gateway.with(target: "/f"), range: "bytes=0-65535"), as: UTF8.self),
            "GET /f HTTP/1.1\r\nUser-Agent: ESP32 HTTP Client/1.0\r\nHost: 127.0.0.1:18070\r\nRange: bytes=0-65535\r\n\r\n", "esp_http_client request")
        expect(
            String(decoding: WiPhoneDevice.iniRequest(path: "/p.ini", host: "gw:8443"), as: UTF8.self),
            "GET /p.ini HTTP/1.1\r\nHost: gw:8443\r\nConnection: close\r\n\r\n", "WiPhone ini request")
        expect(FOTADevice.atoi(" 123abc"), 123, "atoi")
        expect(Endpoint.parse("https://127.0.0.1:18443/v1/x?y=1")?.hostHeader, "127.0.0.1:18443", "Host header with port")
        expect(Endpoint.parse("https://gw.example/v1")?.hostHeader, "gw.example", "Host header without default port")

        // Images: the initial ESP8266 sketch and the ESP32 one are valid for the inspector.
        let esp8266 = RunningImage.initial(chip: "esp8266", version: "1.0.0", seed: 1)
        expect(FlashVerifier.problem(esp8266.bytes, chip: "esp8266"), nil, "ESP8266 v1 image")
        let esp32 = RunningImage.initial(chip: "esp32s3", version: "1.0.0", seed: 1)
        expect(FlashVerifier.problem(esp32.bytes, chip: "esp32s3"), nil, "ESP32-S3 image")
        expect(ImageFacts.appDescVersion(esp32.bytes.prefix(1024)), "1.0.0", "app description version")
        expect(esp32.partitionSHA256.count, 64, "partition SHA-256 length")
        expect(esp32.partitionSHA256 == esp32.partitionSHA256.uppercased(), true, "partition SHA-256 upper case")

        // Faults.
        var faults = FaultState(plan: FaultPlan(dropAtByte: 100, drops: 2, stallAtByte: 50, stallSeconds: 1, powerLossAtByte: 100), seed: 1, device: 0)
        faults.beginAttempt(imageLength: 1000)
        expect(faults.next(from: 0, to: 1000)?.offset, 50, "stall first")
        faults.fired(.stall, at: 50)
        expect(faults.next(from: 50, to: 1000)?.kind, .powerLoss, "power loss beats drop at the same offset")

        if failures.isEmpty {
            print("self-test: all checks passed")
        } else {
            for failure in failures { print("FAIL \(failure)") }
            throw ExitCode(1)
        }
    }
}
