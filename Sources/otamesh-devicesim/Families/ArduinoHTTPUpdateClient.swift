/// The HTTP side of Arduino `ESP8266httpUpdate` (esp8266/Arduino 3.x
/// `libraries/ESP8266httpUpdate/src/ESP8266httpUpdate.cpp`) and ESP32 `HTTPUpdate`
/// (espressif/arduino-esp32 2.0.x `libraries/HTTPUpdate/src/HTTPUpdate.cpp`): one
/// `httpUpdate.update(client, url, currentVersion)` call. Research notes §2.
///
/// Request: `GET <path> HTTP/1.0` (`http.useHTTP10(true)`), `Host` (port unless 80/443),
/// `User-Agent: ESP8266-http-Update` / `ESP32-http-Update`, `Connection: keep-alive` (HTTPClient
/// `_reuse` defaults to true), then the `x-ESP8266-*` / `x-ESP32-*` headers in `addHeader` order.
/// Response: 304 = no update; 200 needs Content-Length > 0 and ≤ free space; the first byte
/// must be 0xE9 (ESP8266 3.x also 0x1F, and the header's flash size must fit the chip); then
/// `Update.begin`, `setMD5(x-MD5)` (exactly 32 characters), `writeStream` of exactly
/// Content-Length bytes, `Update.end()` (MD5 of the received stream, case-sensitive; ESP32:
/// `esp_ota_set_boot_partition` runs esp_image_verify on what was written). No redirects
/// (`HTTPC_DISABLE_FOLLOW_REDIRECTS` by default): a 3xx is "Wrong HTTP Code".
struct ArduinoHTTPUpdateClient: Sendable {
    let identity: DeviceIdentity
    let isESP8266: Bool
    /// The chip the device is: `esp8266`, or an ESP32-family name.
    let chip: String
    let freeSpace: Int
    let chipSize: Int
    let sdkVersion: String

    // httpUpdate error codes (ESP8266httpUpdate.h / HTTPUpdate.h).
    static let tooLessSpace = -100, notReportSize = -101, fileNotFound = -102, forbidden = -103,
        wrongHTTPCode = -104, faultyMD5 = -105, verifyHeaderFailed = -106, binForWrongFlash = -107, unauthorized = -108
    // Updater error codes (Updater.h of each core).
    static let updateErrorStream = 6, updateErrorMD5 = 7, esp8266MagicByte = 10, esp32Activate = 9
    // HTTPClient error codes.
    static let connectionRefused = -1, connectionLost = -5, readTimeout = -11

    init(identity: DeviceIdentity, esp8266: Bool, chip: String, settings: RunSettings) {
        self.identity = identity
        isESP8266 = esp8266
        self.chip = chip
        // ESP.getFreeSketchSpace(): ESP8266 4M1M layout ≈ 1 MiB minus the sketch; ESP32 default
        // OTA partition (0x140000).
        freeSpace = settings.freeSpace ?? (esp8266 ? 1_044_480 : 1_310_720)
        chipSize = settings.chipSize
        sdkVersion = settings.sdkVersion ?? (esp8266 ? "2.2.2-dev(38a443e)" : "v4.4.7-dirty")
    }

    enum Outcome: Sendable {
        case noUpdate(String)
        case flashed([UInt8])
        case failed(stage: String, reason: String, code: Int?)
        case powerLoss(Int)
    }

    /// The request bytes, exactly as HTTPClient `sendHeader` builds them.
    func request(endpoint: Endpoint, running: RunningImage, currentVersion: String, filesystem: Bool = false) -> [UInt8] {
        var text = "GET \(endpoint.target) HTTP/1.0\r\nHost: \(endpoint.hostHeader)\r\n"
        text += "User-Agent: \(isESP8266 ? "ESP8266-http-Update" : "ESP32-http-Update")\r\n"
        text += "Connection: keep-alive\r\n"
        for (name, value) in headers(running: running, currentVersion: currentVersion, filesystem: filesystem) { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// The `addHeader` calls of `handleUpdate`, in order (`updateFS`/`updateSpiffs`: mode `spiffs`).
    func headers(running: RunningImage, currentVersion: String, filesystem: Bool = false) -> [(String, String)] {
        let mode = filesystem ? "spiffs" : "sketch"
        if isESP8266 {
            var out: [(String, String)] = [
                ("x-ESP8266-Chip-ID", identity.esp8266ChipID),
                ("x-ESP8266-STA-MAC", identity.macUpper),
                ("x-ESP8266-AP-MAC", identity.esp8266SoftAPMAC),
                ("x-ESP8266-free-space", String(freeSpace)),
                ("x-ESP8266-sketch-size", String(running.sketchSize)),
                ("x-ESP8266-sketch-md5", running.sketchMD5),
                ("x-ESP8266-chip-size", String(chipSize)),
                ("x-ESP8266-sdk-version", sdkVersion),
                ("x-ESP8266-mode", mode),
            ]
            if !currentVersion.isEmpty { out.append(("x-ESP8266-version", currentVersion)) }
            return out
        }
        var out: [(String, String)] = [
            ("Cache-Control", "no-cache"),
            ("x-ESP32-STA-MAC", identity.macUpper),
            ("x-ESP32-AP-MAC", identity.esp32SoftAPMAC),
            ("x-ESP32-free-space", String(freeSpace)),
            ("x-ESP32-sketch-size", String(running.sketchSize)),
            ("x-ESP32-sketch-md5", running.sketchMD5),
            ("x-ESP32-sketch-sha256", running.partitionSHA256),
            ("x-ESP32-chip-size", String(chipSize)),
            ("x-ESP32-sdk-version", sdkVersion),
            ("x-ESP32-mode", mode),
        ]
        if !currentVersion.isEmpty { out.append(("x-ESP32-version", currentVersion)) }
        return out
    }

    /// One `httpUpdate.update()` — or, with `filesystemSize`, one `updateFS()` into a filesystem
    /// partition of that size: the request, the checks, the download into flash.
    func run(
        _ context: PollContext, endpoint: Endpoint, running: RunningImage, currentVersion: String,
        faults: inout FaultState, filesystemSize: Int? = nil
    ) async -> Outcome {
        let request = request(endpoint: endpoint, running: running, currentVersion: currentVersion, filesystem: filesystemSize != nil)
        do {
            return try await context.exchange(endpoint, request: request) { io, head in
                try await handle(&io, head, context: context, faults: &faults, filesystemSize: filesystemSize)
            }
        } catch let error as TransferError {
            let (stage, reason, code) = Self.classify(error, stage: context.status == nil ? "check" : "download")
            return .failed(stage: stage, reason: reason, code: code)
        } catch {
            return .failed(stage: "check", reason: "\(error)", code: nil)
        }
    }

    /// `handleUpdate` after `http.GET()`, then `runUpdate`.
    private func handle(
        _ io: inout ConnectionIO, _ head: ResponseHead, context: PollContext, faults: inout FaultState, filesystemSize: Int?
    ) async throws -> Outcome {
        context.decided(status: head.status)
        switch head.status {
        case 200: break
        case 304: return .noUpdate("304 Not Modified")
        case 404: return .failed(stage: "check", reason: "HTTP_UE_SERVER_FILE_NOT_FOUND (404)", code: Self.fileNotFound)
        case 403: return .failed(stage: "check", reason: "HTTP_UE_SERVER_FORBIDDEN (403)", code: Self.forbidden)
        case 401 where isESP8266:
            return .failed(stage: "check", reason: "HTTP_UE_SERVER_UNAUTHORIZED (401)", code: Self.unauthorized)
        default:
            return .failed(stage: "check", reason: "HTTP_UE_SERVER_WRONG_HTTP_CODE (\(head.status))", code: Self.wrongHTTPCode)
        }
        // http.getSize(): Content-Length, -1 when absent (these cores do not decode chunked
        // bodies for an HTTP/1.0 request either).
        guard let length = head.contentLength, length > 0, !head.isChunked else {
            return .failed(stage: "check", reason: "HTTP_UE_SERVER_NOT_REPORT_SIZE (no Content-Length)", code: Self.notReportSize)
        }
        guard length <= (filesystemSize ?? freeSpace) else {
            return .failed(stage: "check", reason: "HTTP_UE_TOO_LESS_SPACE (\(length) > free \(filesystemSize ?? freeSpace))", code: Self.tooLessSpace)
        }
        if filesystemSize != nil { return try await filesystemDownload(&io, head, length: length, context: context, faults: &faults) }
        faults.beginAttempt(imageLength: length)
        var reader = BodyReader(imageOffset: 0, rate: faults.plan.rate)
        var received: [UInt8] = []
        received.reserveCapacity(length)
        var md5 = StreamDigest.md5()
        do {
            // ESP8266: tcp->peekBytes(buf, 4); ESP32: tcp->peek().
            try await reader.read(&io, length: min(isESP8266 ? 4 : 1, length), faults: &faults) { received += $0 }
            guard let first = received.first, first == 0xE9 || (isESP8266 && first == 0x1F), !isESP8266 || received.count == 4 else {
                context.bytes += reader.delivered
                return .failed(
                    stage: "download", reason: "HTTP_UE_BIN_VERIFY_HEADER_FAILED (first byte \(received.first.map { "0x" + String($0, radix: 16) } ?? "none"))",
                    code: Self.verifyHeaderFailed)
            }
            if isESP8266, first == 0xE9, ImageFacts.esp8266MagicFlashSize(received[3] >> 4) > chipSize {
                context.bytes += reader.delivered
                return .failed(
                    stage: "download",
                    reason:
                        "HTTP_UE_BIN_FOR_WRONG_FLASH (image wants \(ImageFacts.esp8266MagicFlashSize(received[3] >> 4)) bytes of flash, chip has \(chipSize))",
                    code: Self.binForWrongFlash)
            }
            // runUpdate: Update.begin, Update.setMD5 (exactly 32 characters), Update.writeStream.
            let expectedMD5 = head.header("x-MD5") ?? ""
            if !expectedMD5.isEmpty && expectedMD5.utf8.count != 32 {
                context.bytes += reader.delivered
                return .failed(stage: "download", reason: "HTTP_UE_SERVER_FAULTY_MD5 (x-MD5 '\(expectedMD5)')", code: Self.faultyMD5)
            }
            var flash = FlashPartition(capacity: length, corruptAt: faults.corruptionOffset(imageLength: length))
            flash.write(received[...], at: 0)
            md5.add(received[...])
            try await reader.read(&io, length: length, faults: &faults) { chunk in
                flash.write(chunk, at: flash.bytes.count)
                md5.add(chunk)
            }
            context.bytes += reader.delivered
            // Update.end(): the MD5 of the received stream against x-MD5 (case-sensitive).
            if !expectedMD5.isEmpty, expectedMD5 != md5.hex {
                return .failed(stage: "verify", reason: "UPDATE_ERROR_MD5 (x-MD5 \(expectedMD5), received \(md5.hex))", code: Self.updateErrorMD5)
            }
            if isESP8266 {
                // _verifyEnd(): the magic of what was written.
                if flash.bytes.first != 0xE9 && flash.bytes.first != 0x1F {
                    return .failed(stage: "verify", reason: "UPDATE_ERROR_MAGIC_BYTE", code: Self.esp8266MagicByte)
                }
            } else if let problem = FlashVerifier.problem(flash.bytes, chip: chip) {
                // _verifyEnd() → esp_ota_set_boot_partition → esp_image_verify.
                return .failed(stage: "verify", reason: "UPDATE_ERROR_ACTIVATE (\(problem))", code: Self.esp32Activate)
            }
            return .flashed(flash.bytes)
        } catch let error as TransferError {
            context.bytes += reader.delivered
            if case .powerLoss(let at) = error { return .powerLoss(at) }
            // Update.writeStream(in) != size → UPDATE_ERROR_STREAM.
            return .failed(stage: "download", reason: "UPDATE_ERROR_STREAM (\(error))", code: Self.updateErrorStream)
        }
    }

    /// `runUpdate(…, U_FS)`: no magic byte or flash-size check, the MD5 of the stream against
    /// `x-MD5`, written to the filesystem partition (the core does not reboot after it).
    private func filesystemDownload(
        _ io: inout ConnectionIO, _ head: ResponseHead, length: Int, context: PollContext, faults: inout FaultState
    ) async throws -> Outcome {
        let expectedMD5 = head.header("x-MD5") ?? ""
        if !expectedMD5.isEmpty && expectedMD5.utf8.count != 32 {
            return .failed(stage: "download", reason: "HTTP_UE_SERVER_FAULTY_MD5 (x-MD5 '\(expectedMD5)')", code: Self.faultyMD5)
        }
        var reader = BodyReader(imageOffset: 0, rate: faults.plan.rate)
        var received: [UInt8] = []
        received.reserveCapacity(length)
        var md5 = StreamDigest.md5()
        do {
            try await reader.read(&io, length: length, faults: &faults) { chunk in
                received += chunk
                md5.add(chunk)
            }
        } catch let error as TransferError {
            context.bytes += reader.delivered
            if case .powerLoss(let at) = error { return .powerLoss(at) }
            return .failed(stage: "download", reason: "UPDATE_ERROR_STREAM (\(error))", code: Self.updateErrorStream)
        }
        context.bytes += reader.delivered
        if !expectedMD5.isEmpty, expectedMD5 != md5.hex {
            return .failed(stage: "verify", reason: "UPDATE_ERROR_MD5 (x-MD5 \(expectedMD5), received \(md5.hex))", code: Self.updateErrorMD5)
        }
        return .flashed(received)
    }

    static func classify(_ error: TransferError, stage: String) -> (String, String, Int?) {
        switch error {
        case .connect: (stage, "HTTPC_ERROR_CONNECTION_REFUSED (\(error))", connectionRefused)
        case .timeout: (stage, "HTTPC_ERROR_READ_TIMEOUT (\(error))", readTimeout)
        default: (stage, "HTTPC_ERROR_CONNECTION_LOST (\(error))", connectionLost)
        }
    }
}
