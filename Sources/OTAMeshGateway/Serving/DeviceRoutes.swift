import OTAMeshCommon
import OTAMeshDevices
import OTAMeshFirmware
import OTAMeshRollout
import OTAMeshTrust

/// The device routes, as a pure function of the request, the serving catalog, the device
/// registry's assignments and what the rollouts answered. Every device-family route returns
/// the sighting to record and, when a rollout's target was served or found current, the
/// conclusion to tell the rollouts; it asks for what it lacks (``Outcome/needRolloutAnswer(_:)``,
/// ``Outcome/needDigests(_:)``) and is called again once the shell has it (``DeviceAPI``).
///
/// | Route | Family |
/// |---|---|
/// | `GET/HEAD /v1/blobs/sha256/{hex}` | any (content address) |
/// | `GET/HEAD /v1/targets/{path}` | any (signed target path) |
/// | `GET /v1/devices/{id}/update?hardware=&version=` | generic JSON manifest |
/// | `GET/HEAD /v1/devices/{id}/firmware` | esp_https_ota (plain GET and Range) |
/// | `GET/HEAD /v1/esp/update` | Arduino ESP8266httpUpdate / ESP32 HTTPUpdate |
/// | `GET/HEAD /v1/fota/{id}/user1.bin`, `…/user2.bin` | ESP8266 NONOS FOTA custom server |
/// | `GET/HEAD /v1/wiphone[/{id}]/WiPhone-phone.ini` | WiPhone |
/// | `GET/HEAD /v1/tuf/{file}` | peers: this gateway's trusted TUF metadata, as a mirror |
/// | `GET /v1/pieces/sha256/{hex}?size=S` | peers: a held blob's piece list (swarm transfer) |
public enum DeviceRoutes {
    /// What answering a request needs besides the request itself.
    public struct Context: Sendable {
        public var catalog: ServingCatalog
        /// The assigned target path of a device id.
        public var assignment: @Sendable (String) -> String?
        /// A blob's other digests, nil until computed (see ``Outcome/needDigests(_:)``).
        public var digests: @Sendable (String) -> BlobDigests?
        /// Whether rollouts run here: then a device's answer needs theirs first (they decide
        /// before manual assignments).
        public var rolloutsActive: Bool
        /// What the rollouts answered for this request's device, once the shell asked them.
        public var rolloutAnswer: (query: DeviceQuery, answer: RolloutAnswer)?
        /// A device's configuration image as the shell prepared it, nil until it did (see
        /// ``Outcome/needConfiguration(_:)``).
        public var configuration: @Sendable (String) -> ConfigurationOffer? = { _ in nil }
        /// hawkBit DDI (nil: off, its paths are 404).
        public var ddi: DDIContext?
        /// A held blob's piece list for a piece size, nil until computed (see
        /// ``Outcome/needPieces(_:size:)``).
        public var pieceList: @Sendable (_ sha256: String, _ size: Int64) -> [UInt8]? = { _, _ in nil }

        public init(
            catalog: ServingCatalog, assignment: @escaping @Sendable (String) -> String?,
            digests: @escaping @Sendable (String) -> BlobDigests? = { _ in nil }, rolloutsActive: Bool = false
        ) {
            self.catalog = catalog
            self.assignment = assignment
            self.digests = digests
            self.rolloutsActive = rolloutsActive
        }
    }

    /// What devices compare against besides the file's SHA-256.
    public struct BlobDigests: Sendable, Equatable {
        /// MD5 of the whole file (httpUpdate's `x-MD5`, ESP8266's `x-ESP8266-sketch-md5`).
        public var md5: String
        /// The last 32 bytes (hex): an ESP32 image's appended SHA-256, which is what
        /// `esp_partition_get_sha256` — and so `x-ESP32-sketch-sha256` — reports for the running app.
        public var appendedDigest: String?
        /// SHA-1 of the whole file (hawkBit DDI's `hashes.sha1`, which SWUpdate checks), as the
        /// store recorded it at ingest.
        public var sha1: String?

        public init(md5: String, appendedDigest: String?, sha1: String? = nil) {
            self.md5 = md5
            self.appendedDigest = appendedDigest
            self.sha1 = sha1
        }
    }

    public enum Outcome: Sendable, Equatable {
        /// What the device is told, the sighting to record, and what to tell the rollouts.
        case response(DeviceResponse, sighting: DeviceSighting?, conclusion: RolloutConclusion? = nil, ddiFeedback: DDIFeedbackEvent? = nil)
        /// The answer needs this blob's ``BlobDigests`` (ESP httpUpdate): compute them off the
        /// event loop, then ask again.
        case needDigests(String)
        /// The answer needs this device's configuration image (filesystem mode): build or find
        /// it off the event loop (``DeviceConfigurations``), then ask again.
        case needConfiguration(String)
        /// The answer needs this blob's piece list for pieces of `size` bytes: hash it off the
        /// event loop, then ask again.
        case needPieces(String, size: Int64)
        /// The answer needs the rollouts' answer for this device (``DeviceRollouts/answer(_:)``,
        /// which may start an attempt): ask them, put it in ``Context/rolloutAnswer``, ask again.
        case needRolloutAnswer(DeviceQuery)
    }

    /// A rollout's target was served to a device (`upToDate: false`) or found to be what it runs
    /// (`true`): the shell tells the rollouts (``DeviceRollouts/concluded(_:rollout:upToDate:)``).
    public struct RolloutConclusion: Sendable, Equatable {
        public var query: DeviceQuery
        public var rollout: String
        public var upToDate: Bool
    }

    /// Raised inside the routes when the rollouts' answer is still missing.
    struct NeedRolloutAnswer: Error {
        let query: DeviceQuery
    }

    /// A device's decision, the target path it considered, and what to tell the rollouts.
    struct Decided {
        var decision: Decision
        var path: String?
        var conclusion: RolloutConclusion?
    }

    public static func handle(_ request: DeviceRequest, context: Context) -> Outcome {
        do throws(NeedRolloutAnswer) {
            return try route(request, context: context)
        } catch {
            return .needRolloutAnswer(error.query)
        }
    }

    static func route(_ request: DeviceRequest, context: Context) throws(NeedRolloutAnswer) -> Outcome {
        // The two content routes take most traffic: matched here, without splitting the path
        // (and only here).
        if request.method == "GET" || request.method == "HEAD" {
            if let hex = request.path.dropPrefix("/v1/blobs/sha256/"), !hex.utf8.contains(UInt8(ascii: "/")) {
                guard let blob = context.catalog.blobs[hex.lowercased()] else { return plain(.notFound("blob \(hex)")) }
                return plain(FileServing.respond(to: request, blob: blob))
            }
            if request.method == "GET", let hex = request.path.dropPrefix("/v1/pieces/sha256/") {
                return pieces(request, hex: hex.lowercased(), context: context)
            }
            if let path = request.path.dropPrefix("/v1/targets/"), !path.isEmpty {
                guard let (target, blob) = context.catalog.blob(forTarget: path) else { return plain(.notFound("target \(path)")) }
                var response = FileServing.respond(to: request, blob: blob, extra: disposition(target))
                // Manifests hand out `…/v1/targets/PATH?device=ID`, so the download is the device's.
                response.device = request.query["device"].map(DeviceRegistry.normalizedID)
                return plain(response)
            }
        }
        if let ddi = context.ddi, ddi.settings.enabled, !request.path.hasPrefix("/v1/"), let path = DDI.path(request.path) {
            return try Self.ddi(request, path: path, ddi: ddi, context: context)
        }
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        guard segments.first == "v1", segments.count >= 2 else { return plain(.notFound(request.path)) }
        guard request.method == "GET" || request.method == "HEAD" else {
            return plain(.text(405, "method \(request.method) not allowed\n", extra: [("Allow", "GET, HEAD")]))
        }
        let rest = Array(segments.dropFirst())
        switch rest[0] {
        case "devices" where rest.count == 3 && rest[2] == "update":
            return try jsonManifest(request, id: DeviceRegistry.normalizedID(rest[1]), context: context)
        case "devices" where rest.count == 3 && rest[2] == "firmware":
            return try httpsOTA(request, id: DeviceRegistry.normalizedID(rest[1]), context: context)
        case "esp" where rest.count == 2 && rest[1] == "update":
            return try espHTTPUpdate(request, context: context)
        case "fota" where rest.count == 3 && (rest[2] == "user1.bin" || rest[2] == "user2.bin"):
            return try fota(request, id: DeviceRegistry.normalizedID(rest[1]), file: rest[2], context: context)
        case "tuf" where rest.count == 2:
            guard let bytes = TUFMirror.file(named: rest[1], in: context.catalog.metadata) else { return plain(.notFound("metadata \(rest[1])")) }
            return plain(DeviceResponse(status: 200, headers: [("Content-Type", "application/json")], body: [.bytes(bytes)]))
        case DeviceFamily.wiphone.rawValue where rest.last == WiPhoneManifest.fileName && (rest.count == 2 || rest.count == 3):
            let id = rest.count == 3 ? DeviceRegistry.normalizedID(rest[1]) : "ip:\(request.clientAddress)"
            return try wiphone(request, id: id, context: context)
        default:
            return plain(.notFound(request.path))
        }
    }

    static func plain(_ response: DeviceResponse) -> Outcome { .response(response, sighting: nil) }

    /// A held blob's piece list (the SHA-256 of each piece, 32 bytes each, in order) for
    /// `?size=` (a valid piece size): peers check it against the target's signed root.
    static func pieces(_ request: DeviceRequest, hex: String, context: Context) -> Outcome {
        guard let blob = context.catalog.blobs[hex] else { return plain(.notFound("blob \(hex)")) }
        guard let size = request.query["size"].flatMap({ Int64($0) }), (try? PieceLayout(length: blob.size, pieceSize: size)) != nil else {
            return plain(.text(400, "?size= must be a piece size (a power of two from 256 KiB to 16 MiB)\n"))
        }
        guard let list = context.pieceList(hex, size) else { return .needPieces(hex, size: size) }
        return plain(DeviceResponse(status: 200, headers: [("Content-Type", "application/octet-stream")], body: [.bytes(list)]))
    }

    static func disposition(_ target: ServedTarget) -> [(String, String)] {
        let name = target.fileName.filter { $0.isASCII && $0 != "\"" && $0 != "\\" && !$0.isNewline }
        return [("Content-Disposition", "attachment; filename=\"\(name)\"")]
    }

    /// `http(s)://HOST` from the request, for absolute URLs in manifests ("" when no Host).
    static func origin(_ request: DeviceRequest) -> String {
        guard let host = request.header("host"), !host.isEmpty, host.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "/" }) else { return "" }
        return (request.isTLS ? "https://" : "http://") + host
    }

    static func targetURL(_ request: DeviceRequest, _ target: ServedTarget) -> String {
        origin(request) + "/v1/targets/" + target.path.split(separator: "/").map { PercentEncoding.encode($0) }.joined(separator: "/")
    }

    // MARK: Offer decision

    /// Whether a device gets an update, and why (the registry shows the reason).
    public enum Decision: Sendable, Equatable {
        case offer(ServedTarget, ServedBlob)
        case upToDate(String)
        case nothing(String)

        var answer: String {
            switch self {
            case .offer(let target, _): "offered \(target.path)"
            case .upToDate(let why): "up to date (\(why))"
            case .nothing(let why): why
            }
        }
    }

    /// What the device says it runs, as a digest of its firmware.
    public struct RunningDigests: Sendable, Equatable {
        public var md5: String?
        public var sha256: String?
        public init(md5: String? = nil, sha256: String? = nil) {
            self.md5 = md5?.lowercased()
            self.sha256 = sha256?.lowercased()
        }
    }

    /// The rule every family shares: only an assigned, cached, hardware-compatible target whose
    /// content (MD5 / SHA-256) or version differs from what the device runs.
    /// A running rollout that covers the device decides what it is offered (and hears what
    /// came of it); manual assignments (`otamesh device assign`) apply to devices no rollout
    /// covers. Also gives the target path considered.
    static func decide(
        id: String, hardware: String?, version: String?, running: RunningDigests = RunningDigests(),
        family: DeviceFamily, address: String, context: Context
    ) throws(NeedRolloutAnswer) -> Decided {
        let query = DeviceQuery(id: id, family: family, hardware: hardware, version: version, address: address)
        var answer = RolloutAnswer.none
        if context.rolloutsActive {
            guard let asked = context.rolloutAnswer, asked.query.asks(query) else { throw NeedRolloutAnswer(query: query) }
            answer = asked.answer
        }
        let path: String
        var rollout: String?
        switch answer {
        case .offer(let offered, let id), .cancel(let offered, let id, _):
            path = offered
            rollout = id
        case .hold(let why), .prefetch(_, _, let why):
            return Decided(decision: .nothing(why))
        case .none:
            guard let assigned = context.assignment(id) else { return Decided(decision: .nothing("no assignment")) }
            path = assigned
        }
        let decision = decideAssigned(path: path, hardware: hardware, version: version, running: running, context: context)
        var conclusion: RolloutConclusion?
        if let rollout {
            switch decision {
            case .offer: conclusion = RolloutConclusion(query: query, rollout: rollout, upToDate: false)
            case .upToDate: conclusion = RolloutConclusion(query: query, rollout: rollout, upToDate: true)
            case .nothing: break
            }
        }
        return Decided(decision: decision, path: path, conclusion: conclusion)
    }

    static func decideAssigned(path: String, hardware: String?, version: String?, running: RunningDigests, context: Context) -> Decision {
        guard let (target, blob) = context.catalog.blob(forTarget: path) else {
            return .nothing("assigned \(path) is not in the cache")
        }
        if let hardware, let wanted = target.hardware, !VariantCompatibility.isCompatible(device: hardware.lowercased(), firmware: wanted.lowercased()) {
            return .nothing("incompatible: \(path) is for \(wanted), device reports \(hardware)")
        }
        let known = context.digests(target.sha256)
        if let md5 = running.md5, md5 == known?.md5 {
            return .upToDate("runs \(path), MD5 \(md5)")
        }
        if let sha = running.sha256, sha == target.sha256 || sha == known?.appendedDigest {
            return .upToDate("runs \(path), SHA-256 \(sha)")
        }
        if let version, let wanted = target.version, version == wanted {
            return .upToDate("runs version \(wanted)")
        }
        return .offer(target, blob)
    }

    /// ``decide`` for a device that reports `hardware` and `version` as query parameters.
    static func decideReported(
        _ request: DeviceRequest, id: String, family: DeviceFamily, context: Context
    ) throws(NeedRolloutAnswer) -> (Decided, DeviceSighting) {
        let hardware = request.query["hardware"].flatMap { $0.isEmpty ? nil : $0 }
        let version = request.query["version"].flatMap { $0.isEmpty ? nil : $0 }
        let decided = try decide(id: id, hardware: hardware, version: version, family: family, address: request.clientAddress, context: context)
        return (
            decided,
            DeviceSighting(
                id: id, family: family, hardware: hardware, version: version,
                address: request.clientAddress, answer: decided.decision.answer)
        )
    }

    // MARK: Generic JSON manifest

    static func jsonManifest(_ request: DeviceRequest, id: String, context: Context) throws(NeedRolloutAnswer) -> Outcome {
        let (decided, sighting) = try decideReported(request, id: id, family: .generic, context: context)
        guard case .offer(let target, let blob) = decided.decision else { return .response(.empty(204), sighting: sighting, conclusion: decided.conclusion) }
        let url = targetURL(request, target) + "?device=" + PercentEncoding.encode(Substring(id))
        let body = "{\"sha256\":\"\(blob.sha256)\",\"size\":\(blob.size),\"url\":\(jsonQuoted(url)),\"version\":\(jsonQuoted(target.version ?? ""))}\n"
        return .response(.text(200, body, type: "application/json", extra: [("Cache-Control", "no-store")]), sighting: sighting, conclusion: decided.conclusion)
    }

    // MARK: esp_https_ota

    /// esp_https_ota fetches one fixed URL (plain GET, or Range requests of
    /// `max_http_request_size` with partial download); the app reads the image's app
    /// description and decides. The gateway serves the assigned image, 404 when none.
    static func httpsOTA(_ request: DeviceRequest, id: String, context: Context) throws(NeedRolloutAnswer) -> Outcome {
        let hardware = request.query["hardware"].flatMap { $0.isEmpty ? nil : $0 }
        let version = request.query["version"].flatMap { $0.isEmpty ? nil : $0 }
        let decided = try decide(
            id: id, hardware: hardware, version: version, running: RunningDigests(), family: .espHTTPSOTA,
            address: request.clientAddress, context: context)
        let (decision, path) = (decided.decision, decided.path)
        var sighting = DeviceSighting(
            id: id, family: .espHTTPSOTA, hardware: hardware, version: version,
            address: request.clientAddress, answer: decision.answer)
        // The device reads the image's app description and decides itself, so a device already
        // running the assigned version still gets the image (it stops after the header); the
        // registry records that it is up to date.
        let served: (ServedTarget, ServedBlob)?
        switch decision {
        case .offer(let target, let blob): served = (target, blob)
        case .upToDate: served = path.flatMap { context.catalog.blob(forTarget: $0) }
        case .nothing: served = nil
        }
        guard let (target, blob) = served else {
            return .response(.notFound("no image assigned to \(id)"), sighting: sighting, conclusion: decided.conclusion)
        }
        if case .offer = decision, let range = request.header("range") { sighting.answer = "offered \(target.path) (\(range))" }
        var response = FileServing.respond(to: request, blob: blob, extra: disposition(target))
        response.device = id
        return .response(response, sighting: sighting, conclusion: decided.conclusion)
    }

    // MARK: Arduino httpUpdate (ESP8266 and ESP32)

    static func espHTTPUpdate(_ request: DeviceRequest, context: Context) throws(NeedRolloutAnswer) -> Outcome {
        let esp = ESPUpdateHeaders(request.headers)
        guard let esp else {
            return plain(.text(403, "only for ESP8266httpUpdate / ESP32 HTTPUpdate (x-ESP8266-* or x-ESP32-* headers)\n"))
        }
        let id = DeviceRegistry.normalizedID(esp.staMAC)
        if esp.mode != "sketch" { return try filesystemUpdate(request, esp: esp, id: id, context: context) }
        let running = RunningDigests(md5: esp.sketchMD5, sha256: esp.sketchSHA256)
        let decided = try decide(
            id: id, hardware: esp.chip, version: esp.version, running: running, family: esp.family,
            address: request.clientAddress, context: context)
        var decision = decided.decision
        if case .offer(let target, _) = decision, context.digests(target.sha256) == nil {
            // x-MD5 and the digest comparison need the blob's MD5: computed once, off the loop.
            return .needDigests(target.sha256)
        }
        if case .offer(let target, let blob) = decision {
            if let free = esp.freeSpace, blob.size > free {
                decision = .nothing("incompatible: \(target.path) is \(blob.size) bytes, device has \(free) free")
            }
        }
        var sighting = DeviceSighting(
            id: id, family: esp.family, hardware: esp.chip, version: esp.version,
            address: request.clientAddress, answer: decision.answer)
        if esp.version == nil, let md5 = esp.sketchMD5 { sighting.version = "md5:\(md5.lowercased())" }
        guard case .offer(let target, let blob) = decision, let md5 = context.digests(target.sha256)?.md5 else {
            return .response(.empty(304), sighting: sighting, conclusion: decided.conclusion)
        }
        var response = FileServing.respond(to: request, blob: blob, extra: disposition(target) + [("x-MD5", md5)])
        response.device = id
        return .response(response, sighting: sighting, conclusion: decided.conclusion)
    }

    // MARK: ESP8266 NONOS FOTA (custom server)

    /// The device runs user1 or user2 and asks for the other one (HEAD for the length, then GET).
    /// An assignment names one of the pair (`…/user1.bin` or `…/user2.bin`); the sibling with the
    /// requested name is served.
    static func fota(_ request: DeviceRequest, id: String, file: String, context: Context) throws(NeedRolloutAnswer) -> Outcome {
        let version = request.query["version"].flatMap { $0.isEmpty ? nil : $0 }
        let decided = try decide(id: id, hardware: nil, version: version, family: .esp8266FOTA, address: request.clientAddress, context: context)
        var decision = decided.decision
        var served: (ServedTarget, ServedBlob)?
        if case .offer(let target, _) = decision {
            let base = target.path.split(separator: "/").dropLast().joined(separator: "/")
            let sibling = (base.isEmpty ? "" : base + "/") + file
            if let pair = context.catalog.blob(forTarget: sibling) {
                served = pair
                decision = .offer(pair.0, pair.1)
            } else {
                decision = .nothing("assigned \(target.path) has no \(file) beside it in the cache")
            }
        }
        let sighting = DeviceSighting(
            id: id, family: .esp8266FOTA, version: version, address: request.clientAddress,
            answer: decision.answer)
        guard let (target, blob) = served else {
            return .response(.notFound("no \(file) assigned to \(id)"), sighting: sighting, conclusion: decided.conclusion)
        }
        var response = FileServing.respond(to: request, blob: blob, extra: disposition(target))
        response.device = id
        return .response(response, sighting: sighting, conclusion: decided.conclusion)
    }

    // MARK: WiPhone

    static func wiphone(_ request: DeviceRequest, id: String, context: Context) throws(NeedRolloutAnswer) -> Outcome {
        let version = request.query["version"].flatMap { $0.isEmpty ? nil : $0 }
        let decided = try decide(id: id, hardware: nil, version: version, family: .wiphone, address: request.clientAddress, context: context)
        let decision = decided.decision
        // The phone does not say what it runs; it compares the offered version itself.
        var sighting = DeviceSighting(
            id: id, family: .wiphone, version: version, address: request.clientAddress,
            answer: decision.answer)
        if case .offer(let target, _) = decision { sighting.answer = "offered \(target.path) version \(target.version ?? "?") (the phone compares)" }
        guard case .offer(let target, _) = decision, let targetVersion = target.version else {
            // An ini without keys reads as version "0" on the phone: no update, and no error shown.
            return .response(.text(200, "", extra: [("Cache-Control", "no-store")]), sighting: sighting, conclusion: decided.conclusion)
        }
        let ini = WiPhoneManifest(version: targetVersion, url: targetURL(request, target)).render()
        return .response(
            .text(200, ini, type: "text/plain; charset=utf-8", extra: [("Cache-Control", "no-store")]), sighting: sighting, conclusion: decided.conclusion)
    }
}

/// What the Arduino cores' httpUpdate sends about the device (esp8266/Arduino
/// ESP8266httpUpdate.cpp, espressif/arduino-esp32 HTTPUpdate.cpp; see docs/devices.md).
struct ESPUpdateHeaders: Sendable {
    /// ``DeviceFamily/esp8266HTTPUpdate`` or ``DeviceFamily/esp32HTTPUpdate``.
    let family: DeviceFamily
    let staMAC: String
    let freeSpace: Int64?
    /// Lower-case hex MD5 of the running sketch (ESP8266; ESP32 core 2.x).
    let sketchMD5: String?
    /// Hex SHA-256 of the running sketch (ESP32 core 2.x, upper case on the wire).
    let sketchSHA256: String?
    /// `sketch` or `spiffs`.
    let mode: String
    let version: String?
    /// `esp8266` for ESP8266; the ESP32 core does not say which chip it runs on.
    let chip: String?

    init?(_ headers: [String: String]) {
        let prefix: String
        if let mac = headers["x-esp8266-sta-mac"] {
            prefix = "x-esp8266-"
            family = .esp8266HTTPUpdate
            staMAC = mac
            chip = "esp8266"
        } else if let mac = headers["x-esp32-sta-mac"] {
            prefix = "x-esp32-"
            family = .esp32HTTPUpdate
            staMAC = mac
            chip = nil
        } else {
            return nil
        }
        freeSpace = headers[prefix + "free-space"].flatMap { Int64($0.trimmingWhitespace()) }
        sketchMD5 = headers[prefix + "sketch-md5"].flatMap { $0.isEmpty ? nil : $0.lowercased() }
        sketchSHA256 = headers[prefix + "sketch-sha256"].flatMap { $0.isEmpty ? nil : $0.lowercased() }
        mode = headers[prefix + "mode"] ?? "sketch"
        version = headers[prefix + "version"].flatMap { $0.isEmpty ? nil : $0 }
    }
}

extension String {
    /// The rest after `prefix` (compared byte-wise), or nil.
    func dropPrefix(_ prefix: StaticString) -> String? {
        let bytes = UnsafeRawBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
        guard utf8.count >= bytes.count, utf8.prefix(bytes.count).elementsEqual(bytes) else { return nil }
        return String(self[utf8.index(utf8.startIndex, offsetBy: bytes.count)...])
    }
}

/// A gateway as a TUF mirror for its peers: the metadata it trusts, under the names a TUF
/// client asks for. Peers verify everything against their own root, so serving is safe; a file
/// that is not current simply fails their checks and they ask another peer.
public enum TUFMirror {
    /// `N.root.json` is served only as that exact version; `N.snapshot.json`, `N.targets.json`
    /// (consistent snapshots) map to the current `snapshot.json`, `targets.json`.
    public static func file(named name: String, in metadata: [String: [UInt8]]) -> [UInt8]? {
        guard !name.contains("/"), name.hasSuffix(".json") else { return nil }
        if let exact = metadata[name], name != "root.json" { return exact }
        let digits = name.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, name.dropFirst(digits.count).first == "." else { return nil }
        let unversioned = String(name.dropFirst(digits.count + 1))
        guard unversioned != "root.json" else { return nil }
        return metadata[unversioned]
    }
}
