import OTAMeshFirmware

/// ESP-IDF `esp_https_ota` with `partial_http_download = true` (newest
/// `components/esp_https_ota/src/esp_https_ota.c`; research notes §3), driven the way
/// `advanced_https_ota_example` drives it: `esp_https_ota_begin`, `esp_https_ota_get_img_desc`,
/// compare the new version with the running one (equal → `esp_https_ota_abort`), then
/// `esp_https_ota_perform` until done and `esp_https_ota_finish`, reboot.
///
/// On the wire (esp_http_client: `HTTP/1.1`, `User-Agent: ESP32 HTTP Client/1.0`, `Host`,
/// no Content-Length on GET/HEAD):
/// 1. `HEAD url` → 200 gives the image length (Content-Length). Otherwise `GET` with
///    `Range: bytes=0-0` → 200 (Content-Length) or 206 (Content-Range total), else the begin fails.
/// 2. A new connection: `GET url` with `Range: bytes=S-E` from ``HTTPSOTAPlan/firstRange`` (none
///    when the image fits one request). 3xx are followed (≤ 10), 304/401/403/404/4xx/5xx fail,
///    416 fails (with `ota_resumption`: restart from byte 0). 200 and 206 are both accepted.
/// 3. The first 1024 bytes (`IMAGE_HEADER_SIZE`) hold the app description; the chip id is checked.
/// 4. Each later request on a new connection: `bytes=%d-%d`, the last one open-ended `bytes=%d-`.
/// 5. `esp_ota_end` verifies the image (esp_image_verify) before the boot partition is switched.
///
/// Read timeouts while reading the body are not fatal in esp_https_ota (`-ESP_ERR_HTTP_EAGAIN`
/// → `ESP_ERR_HTTPS_OTA_IN_PROGRESS`, the app calls perform again), so the body's idle limit is
/// 12 × `--timeout` here; head reads use `--timeout` (fetch_headers fails on EAGAIN).
///
/// Power loss / dropped link: without `--ota-resumption` the next attempt starts from byte 0
/// (the OTA handle lives in RAM). With it, the emulated app keeps `ota_image_bytes_written` in
/// NVS at the end of every completed request and passes it back, so `esp_https_ota_begin`
/// resumes there (only when ≥ IMAGE_HEADER_SIZE, state `ESP_HTTPS_OTA_RESUME`, no header check).
struct HTTPSOTADevice: EmulatedDevice {
    let identity: DeviceIdentity
    private(set) var running: RunningImage
    private var faults: FaultState
    private let chip: String
    /// The passive OTA partition: survives power loss.
    private var staging = FlashPartition()
    /// NVS `ota_image_bytes_written` (only with `--ota-resumption`).
    private var savedOffset = 0

    var version: String { running.version }

    static let userAgent = "ESP32 HTTP Client/1.0"
    static let maxRedirects = 10

    init(identity: DeviceIdentity, settings: RunSettings) {
        self.identity = identity
        chip = settings.hardware
        running = RunningImage.initial(chip: settings.hardware, version: settings.version, seed: settings.seed)
        faults = FaultState(plan: settings.faults, seed: settings.seed, device: identity.index)
    }

    /// esp_http_client's request bytes: the request line, the headers in the order they were set
    /// (User-Agent and Host at init, Range later), a blank line.
    static func request(method: String, endpoint: Endpoint, range: String?) -> [UInt8] {
        var text = "\(method) \(endpoint.target) HTTP/1.1\r\nUser-Agent: \(userAgent)\r\nHost: \(endpoint.hostHeader)\r\n"
        if let range { text += "Range: \(range)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    func url(_ context: PollContext) -> Endpoint {
        let target =
            "/v1/devices/\(identity.id)/firmware?version=\(QueryEncoding.encode(running.version))&hardware=\(QueryEncoding.encode(context.settings.hardware))"
        return context.endpoint(target: target, tls: !context.settings.insecureHTTP)
    }

    enum Failure: Error {
        case fail(String)
        /// The image was downloaded but does not verify (esp_ota_end).
        case verify(String)
        case noUpdate(String)
        case powerLoss(Int)
    }

    mutating func poll(_ context: PollContext) async -> PollReport {
        var report = PollReport()
        report.reported = running.version
        let from = running.version
        do {
            let image = try await update(context)
            let to = FlashVerifier.embeddedVersion(image) ?? "unknown"
            running = RunningImage(bytes: image, version: to)
            report.outcome = .updated(from: from, to: to)
        } catch let failure as Failure {
            switch failure {
            case .fail(let why): report.outcome = .failed(stage: context.decisionMS == nil ? "check" : "download", reason: why, code: nil)
            case .verify(let why): report.outcome = .failed(stage: "verify", reason: why, code: nil)
            case .noUpdate(let why): report.outcome = .noUpdate(reason: why)
            case .powerLoss(let at): report.outcome = .powerLoss(atByte: at)
            }
        } catch {
            report.outcome = .failed(stage: "check", reason: "\(error)", code: nil)
        }
        report.finish(context, faults: &faults)
        return report
    }

    /// One `esp_https_ota` run; returns the verified image or throws ``Failure``.
    private mutating func update(_ context: PollContext) async throws -> [UInt8] {
        let settings = context.settings
        var endpoint = url(context)
        let maxRequest = settings.maxRequestSize
        let resuming = settings.otaResumption && savedOffset >= HTTPSOTAPlan.imageHeaderSize
        var written = resuming ? savedOffset : 0

        // 1. Image length: HEAD, else GET bytes=0-0.
        var imageLength = -1
        let head = try await perform(context, method: "HEAD", endpoint: &endpoint, range: nil)
        if head.status == 200 {
            imageLength = head.contentLength ?? -1
        } else {
            let probe = try await perform(context, method: "GET", endpoint: &endpoint, range: "bytes=0-0")
            guard probe.status == 200 || probe.status == 206 else {
                context.decided(status: probe.status)
                if probe.status == 404 || probe.status == 403 {
                    throw Failure.noUpdate(
                        "esp_https_ota_begin: Received incorrect http status \(probe.status) (HEAD \(head.status)): no image for this device")
                }
                throw Failure.fail("esp_https_ota_begin: Received incorrect http status \(probe.status) (HEAD \(head.status))")
            }
            imageLength = probe.status == 200 ? (probe.contentLength ?? -1) : (probe.contentRangeTotal ?? -1)
        }
        guard imageLength >= 0 else {
            context.decided(status: head.status)
            throw Failure.fail("Failed to get image length from http response")
        }
        if written > imageLength { written = 0 }  // a saved offset for a longer image: start over

        // 2. The first GET, 3. the image header and the version decision.
        faults.beginAttempt(imageLength: imageLength)
        if written == 0 {
            staging = FlashPartition(capacity: imageLength, corruptAt: faults.corruptionOffset(imageLength: imageLength))
        } else {
            staging.truncate(to: written)  // esp_ota_resume: continue after what NVS says is written
            // esp_https_ota_get_img_desc reads the description back from the partition.
            if let flashed = ImageFacts.appDescVersion(staging.bytes[...]), flashed == running.version {
                context.decided(status: head.status)
                throw Failure.noUpdate("Current running version is the same as a new (\(flashed), from the resumed partition)")
            }
        }
        var range = HTTPSOTAPlan.firstRange(imageLength: imageLength, rangeStart: written, maxRequestSize: maxRequest)
        var isFirst = true
        var fellBack = false
        while true {
            let outcome = try await fetch(
                context, endpoint: &endpoint, range: range, imageLength: imageLength,
                written: written, headerPhase: isFirst && written == 0)
            switch outcome {
            case .rangeNotSatisfiable where settings.otaResumption && !fellBack && written > 0:
                // "Falling back to OTA without resumption and restarting download from beginning".
                fellBack = true
                written = 0
                savedOffset = 0
                staging = FlashPartition(capacity: imageLength, corruptAt: faults.corruptionOffset(imageLength: imageLength))
                range = imageLength > maxRequest ? "bytes=0-\(maxRequest - 1)" : nil
                continue
            case .rangeNotSatisfiable:
                throw Failure.fail("ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE (416 for \(range ?? "no range"))")
            case .sameVersion(let version):
                throw Failure.noUpdate("Current running version is the same as a new (\(version)); esp_https_ota_abort")
            case .received(let count):
                written += count
            }
            isFirst = false
            if settings.otaResumption { savedOffset = written }  // the request completed: NVS
            if written == imageLength { break }
            guard written < imageLength else {
                throw Failure.fail("Complete data was not received (\(written) bytes written for an image of \(imageLength): the server ignored Range?)")
            }
            range = HTTPSOTAPlan.nextRange(imageLength: imageLength, written: written, maxRequestSize: maxRequest)
        }

        // 5. esp_https_ota_finish → esp_ota_end → esp_image_verify, then set the boot partition.
        savedOffset = 0
        if let problem = FlashVerifier.problem(staging.bytes, chip: chip) {
            throw Failure.verify("esp_ota_end: \(problem)")
        }
        return staging.bytes
    }

    /// A request without body handling (HEAD, or the bytes=0-0 probe whose body is drained),
    /// following redirects as esp_http_client_perform does.
    private func perform(_ context: PollContext, method: String, endpoint: inout Endpoint, range: String?) async throws -> ResponseHead {
        for _ in 0...Self.maxRedirects {
            let current = endpoint
            let head: ResponseHead
            do {
                head = try await context.exchange(current, request: Self.request(method: method, endpoint: current, range: range)) { io, head in
                    if method != "HEAD", let length = head.contentLength, length > 0, length <= 1 << 20 {
                        var sink = 0
                        var reader = BodyReader(imageOffset: 0, rate: nil)
                        var none = FaultState(plan: FaultPlan(), seed: 0, device: 0)
                        try await reader.read(&io, length: length, faults: &none) { sink += $0.count }
                        context.bytes += sink
                    }
                    return head
                }
            } catch let error as TransferError {
                throw Failure.fail("ESP HTTP client perform failed: \(error)")
            }
            if [301, 302, 303, 307, 308].contains(head.status), let location = head.header("location"), let next = current.resolving(location) {
                endpoint = next
                continue
            }
            return head
        }
        throw Failure.fail("ESP_ERR_HTTP_MAX_REDIRECT")
    }

    enum ChunkOutcome {
        case received(Int)
        case sameVersion(String)
        case rangeNotSatisfiable
    }

    /// One `_http_connect` + the reads of its body. Writes the bytes to the staging partition.
    private mutating func fetch(
        _ context: PollContext, endpoint: inout Endpoint, range: String?, imageLength: Int, written: Int, headerPhase: Bool
    ) async throws -> ChunkOutcome {
        let settings = context.settings
        for _ in 0...Self.maxRedirects {
            let current = endpoint
            enum Step { case done(ChunkOutcome), redirect(Endpoint) }
            let step: Step
            do {
                step = try await context.exchange(current, request: Self.request(method: "GET", endpoint: current, range: range)) { io, head in
                    // _http_handle_response_code
                    switch head.status {
                    case 301, 302, 303, 307, 308:
                        guard let location = head.header("location"), let next = current.resolving(location) else {
                            throw Failure.fail("URL redirection Failed (\(head.status) without a usable Location)")
                        }
                        return .redirect(next)
                    case 304: throw Failure.fail("ESP_ERR_HTTP_NOT_MODIFIED (304)")
                    case 416: return .done(.rangeNotSatisfiable)
                    case 401: throw Failure.fail("Reached max_authorization_retries (401, no credentials)")
                    case 403, 404: throw Failure.fail("File not found(\(head.status))")
                    case 400..<500: throw Failure.fail("Client error (\(head.status))")
                    case 500...: throw Failure.fail("Server error (\(head.status))")
                    default: break
                    }
                    guard let length = head.contentLength, !head.isChunked else {
                        throw Failure.fail("no Content-Length on \(head.status) for \(range ?? "the image") (the chunked path is not emulated)")
                    }
                    var reader = BodyReader(imageOffset: written, rate: faults.plan.rate)
                    defer { context.bytes += reader.delivered }
                    // The body's reads retry on EAGAIN: only a long silence ends them.
                    io.watchdog.setTimeout(settings.timeout * 12)
                    var flash = staging
                    defer { staging = flash }
                    do {
                        if headerPhase {
                            // read_header(): IMAGE_HEADER_SIZE bytes, or the whole response if shorter.
                            let want = min(HTTPSOTAPlan.imageHeaderSize, length)
                            var header: [UInt8] = []
                            try await reader.read(&io, length: want, faults: &faults) { header += $0 }
                            context.decided(status: head.status)
                            guard header.count == HTTPSOTAPlan.imageHeaderSize else {
                                throw Failure.fail("Complete headers were not received (\(header.count) of \(HTTPSOTAPlan.imageHeaderSize) bytes)")
                            }
                            guard let newVersion = ImageFacts.appDescVersion(header[...]) else {
                                throw Failure.fail("Incorrect app descriptor magic")
                            }
                            if newVersion == running.version { return .done(.sameVersion(newVersion)) }
                            // esp_https_ota_verify_image: the header's chip id must be this chip's.
                            if let wanted = ESPChip.named(chip), let id = ImageFacts.chipID(header[...]), id != wanted.id {
                                throw Failure.fail("Mismatch chip id, expected \(wanted.id), found \(id)")
                            }
                            flash.write(header[...], at: written)
                        } else {
                            context.decided(status: head.status)
                        }
                        try await reader.read(&io, length: length, faults: &faults) { chunk in
                            flash.write(chunk, at: flash.bytes.count)
                        }
                    } catch let error as TransferError {
                        if case .powerLoss(let at) = error { throw Failure.powerLoss(at) }
                        if case .closedEarly = error { throw Failure.fail("Connection closed before complete data was received! (\(error))") }
                        throw Failure.fail("\(error)")
                    }
                    return .done(.received(reader.delivered))
                }
            } catch let error as TransferError {
                throw Failure.fail("Failed to establish HTTP connection: \(error)")
            }
            switch step {
            case .done(let outcome): return outcome
            case .redirect(let next): endpoint = next
            }
        }
        throw Failure.fail("ESP_ERR_HTTP_MAX_REDIRECT")
    }
}
