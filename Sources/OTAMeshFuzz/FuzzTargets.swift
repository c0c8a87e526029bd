import Crypto
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshDiscovery
import OTAMeshFirmware
import OTAMeshGateway
import OTAMeshGossip
import OTAMeshLab
import OTAMeshRollout
import OTAMeshTrust

/// One fuzz target per parser that takes bytes from outside (issue 17, item 2). Each target is
/// a pure function of its input that calls the real parsers, as the shells do; whatever the
/// bytes, it must return (typed errors are fine, a trap or a sanitizer report is a bug).
///
/// `make fuzz` runs each under libFuzzer (the `otamesh-fuzz` driver, built only with
/// `OTAMESH_FUZZ=1`); `make test` replays every seed corpus in Tests/Fixtures/fuzz/<name>/
/// through the same functions (OTAMeshFuzzTests). docs/robustness.md records the runs.
public enum FuzzTargets {
    public typealias Target = @Sendable ([UInt8]) -> Void

    /// Every target by name (the name is the corpus directory and `FUZZ_TARGETS=` word).
    public static let all: [String: Target] = [
        "image": image,
        "xz": xz,
        "device-routes": deviceRoutes,
        "gossip-packet": gossipPacket,
        "records-journal": recordsJournal,
        "tuf-metadata": tufMetadata,
        "canonical-json": canonicalJSON,
        "signed-command": signedCommand,
        "rollout-records": rolloutRecords,
        "config-yaml": configYAML,
        "topology": topology,
        DeviceFamily.arduinoOTA.rawValue: arduinoOTA,
        "projectmm-status": projectMMStatus,
        "http-upload-answer": httpUploadAnswer,
        "bundle-tar": bundleTar,
        "mdns-txt": mdnsTXT,
        "filesystem-image": filesystemImage,
        "app-catalog": appCatalog,
        "ddi": ddi,
    ]

    public static var names: [String] { all.keys.sorted() }

    // MARK: Firmware images

    /// `otamesh image inspect`: the first byte picks the format (or detection), the rest is the file.
    static let formats: [ImageFormat?] = [nil, .esp32App, .esp8266, .wmOTA, .mcuboot, .raw]

    @Sendable static func image(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let format = input.pick(formats)
        let bytes = input.rest()
        let report = ImageInspector.inspect(bytes, as: format)
        _ = report.valid
        _ = ImageInspector.detect(bytes[...])
        _ = ArduinoOTAWire.chip(ofHeader: bytes)
    }

    /// The xz decoder (WM OTA payloads): whole, and streamed in two chunks split where the
    /// first two bytes say (the gateway streams; a stream boundary must not matter).
    @Sendable static func xz(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let split = input.u16()
        let bytes = input.rest()
        let whole = try? XZDecoder.decompress(bytes[...], outputLimit: 8 << 20)
        guard let decoder = try? XZDecoder(outputLimit: 8 << 20, threads: 1) else { return }
        var streamed: [UInt8] = []
        let cut = min(split, bytes.count)
        do {
            try bytes[..<cut].withUnsafeBytes { raw in try decoder.decode(raw, finish: false) { streamed.append(contentsOf: $0) } }
            try bytes[cut...].withUnsafeBytes { raw in try decoder.decode(raw, finish: true) { streamed.append(contentsOf: $0) } }
        } catch {
            return
        }
        if let whole { precondition(whole == streamed, "xz: streamed output differs from whole-buffer output") }
    }

    // MARK: Device routes

    static let blob = ServedBlob(sha256: String(repeating: "ab", count: 32), size: 1000, addedAt: 784_111_777)
    static let catalog: ServingCatalog = {
        let targets = [
            ServedTarget(path: "esp32/app/2.0.0.bin", sha256: blob.sha256, size: 1000, version: "2.0.0", hardware: "esp32"),
            ServedTarget(path: "wiphone/2.0.0.bin", sha256: blob.sha256, size: 1000, version: "2.0.0", hardware: "wiphone"),
            ServedTarget(path: "esp8266/user1.bin", sha256: blob.sha256, size: 1000, version: "1.1.0", hardware: "esp8266"),
        ]
        var catalog = ServingCatalog(blobs: [blob], targets: targets)
        catalog.metadata = ["root.json": Array("{\"signed\":{}}".utf8), "1.root.json": Array("{}".utf8), "timestamp.json": Array("{}".utf8)]
        return catalog
    }()
    static let assigned = [
        "aa:bb:cc:dd:ee:ff": "esp32/app/2.0.0.bin", "phone-1": "wiphone/2.0.0.bin", "fota-1": "esp8266/user1.bin",
        "ip:10.0.0.7": "wiphone/2.0.0.bin",
    ]

    /// A device request as text: `METHOD TARGET` on the first line (a trailing ` TLS` marks
    /// HTTPS), then `name: value` header lines. The target is split and percent-decoded as the
    /// device server does; every family's route, Range/If-Range and query handling follow.
    @Sendable static func deviceRoutes(_ data: [UInt8]) {
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard let first = lines.first else { return }
        var words = first.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        let tls = words.count > 2 && words.last == "TLS"
        if tls { words.removeLast() }
        let method = words.first ?? ""
        let target = words.dropFirst().joined(separator: " ")
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            if headers[name] == nil { headers[name] = String(line[line.index(after: colon)...]).trimmingSpacesAndTabs() }
        }
        let (path, query) = DeviceRequest.splitTarget(target)
        let request = DeviceRequest(method: method, path: path, query: query, headers: headers, clientAddress: "10.0.0.7", isTLS: tls)
        for (known, rollouts) in [(false, false), (true, false), (true, true)] {
            var context = DeviceRoutes.Context(
                catalog: catalog, assignment: { assigned[$0] },
                digests: { sha in
                    known && sha == blob.sha256 ? .init(md5: String(repeating: "cd", count: 16), appendedDigest: String(repeating: "ef", count: 32)) : nil
                }, rolloutsActive: rollouts)
            // Filesystem mode: a configuration image with a password, pinned to the fuzzer's address.
            context.configuration = { _ in
                known
                    ? ConfigurationOffer(
                        app: "app@1.0.0", configID: "cfg-0123456789abcdef", blob: blob, md5: String(repeating: "ab", count: 16), holdsSecret: true,
                        address: rollouts ? "10.0.0.7" : "10.0.0.8") : nil
            }
            var outcome = DeviceRoutes.handle(request, context: context)
            if case .needRolloutAnswer(let query) = outcome {
                // A rollout offers what the device's assignment names, or holds it.
                context.rolloutAnswer = (query, assigned[query.id].map { .offer(path: $0, rollout: "r-0123456789ab") } ?? .hold("fuzz"))
                outcome = DeviceRoutes.handle(request, context: context)
                if case .needRolloutAnswer = outcome { preconditionFailure("the routes asked twice for one answer") }
            }
            switch outcome {
            case .response(let response, _, _, _):
                _ = response.contentLength
                if method == "GET" || method == "HEAD" {
                    // HEAD must carry exactly GET's headers.
                    var other = request
                    other.method = method == "GET" ? "HEAD" : "GET"
                    if case .response(let twin, _, _, _) = DeviceRoutes.handle(other, context: context) {
                        precondition(twin.status == response.status && twin.contentLength == response.contentLength, "HEAD and GET differ")
                    }
                }
            case .needDigests, .needRolloutAnswer, .needConfiguration, .needPieces:
                continue
            }
        }
    }

    // MARK: Gossip

    static let siteKey: [UInt8] = Array(0..<32)
    static let keyring = try! SiteKeyring(primary: siteKey, others: [Array(repeating: 7, count: 32)])

    /// A gossip UDP packet or TCP frame. First byte even: the bytes are a packet as received
    /// (keyring open first). Odd: the rest is a payload, sealed with the site key so the fuzzer
    /// gets past the AEAD, then opened and decoded as the mesh does: WireCodec, then every
    /// record's decoder (device summaries, member info, key rotation, rollout records).
    @Sendable static func gossipPacket(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let mode = input.byte()
        let rest = input.rest()
        let packet = mode % 2 == 0 ? rest : keyring.seal(rest, nonce: Array(repeating: 1, count: 12))
        guard case .success(let payload) = keyring.open(packet) else { return }
        guard let messages = try? WireCodec.decode(payload) else { return }
        // What decodes re-encodes to something that decodes the same.
        if let again = try? WireCodec.encode(messages) {
            precondition((try? WireCodec.decode(again)) == messages, "WireCodec: decode(encode(m)) != m")
        }
        var entries: [RolloutRecords.Entry] = []
        for message in messages {
            switch message {
            case .alive(_, _, let metadata):
                _ = MemberInfo.decode(metadata)
            case .record(let key, let owner, _, let value):
                _ = DeviceSummaries.decode(key: key, value: value)
                _ = KeyRotation.decode(value)
                entries.append(.init(key: key, owner: owner, value: value))
            default:
                break
            }
        }
        decodeRollouts(entries)
    }

    /// `DATA/gossip/records.journal` as a starting agent reads it: any bytes decode (stopping at
    /// the first bad entry), and what decoded, rewritten as a compaction does, reads back the same.
    @Sendable static func recordsJournal(_ data: [UInt8]) {
        let loaded = RecordJournal.decode(data)
        precondition(loaded.validLength <= data.count, "RecordJournal: valid length past the end")
        let again = RecordJournal.decode(RecordJournal.file(loaded.records))
        precondition(again.records == loaded.records && again.problem == nil, "RecordJournal: a rewrite does not read back the same")
    }

    // MARK: Trust

    static let now: Int64 = 1_800_000_000

    /// TUF metadata. The first byte picks: one role's parser on the rest (root, timestamp,
    /// snapshot, targets, any envelope), or the client's whole update chain — a trusted root,
    /// then timestamp, snapshot and targets, each a chunk with a two-byte length.
    @Sendable static func tufMetadata(_ data: [UInt8]) {
        var input = FuzzInput(data)
        switch input.pick(6) {
        case 0:
            let bytes = input.rest()
            _ = try? RootMetadata(bytes: bytes)
            _ = try? TrustedMetadataSet(rootBytes: bytes, now: now)
        case 1: _ = try? TimestampMetadata(bytes: input.rest())
        case 2: _ = try? SnapshotMetadata(bytes: input.rest())
        case 3: _ = try? TargetsMetadata(bytes: input.rest(), file: "targets.json")
        case 4: _ = try? Envelope(bytes: input.rest(), file: "x.json", expectedType: "targets")
        default:
            let root = input.chunk16()
            let timestamp = input.chunk16()
            let snapshot = input.chunk16()
            let targets = input.chunk16()
            guard var set = try? TrustedMetadataSet(rootBytes: root, now: now) else { return }
            _ = try? set.checkRootFresh()
            guard (try? set.updateTimestamp(timestamp)) != nil else { return }
            guard (try? set.updateSnapshot(snapshot)) != nil else { return }
            _ = try? set.updateTargets(targets)
        }
    }

    /// The JSON parser and the two forms it writes: the canonical form every signature is over
    /// (a fixed point), and the compact form commands travel in, which must parse back to the
    /// same value — and equal the canonical form when no string holds a control character.
    @Sendable static func canonicalJSON(_ data: [UInt8]) {
        guard let value = try? JSONValue.parse(data) else { return }
        let canonical = value.canonicalBytes
        let compact = value.compactBytes
        guard let again = try? JSONValue.parse(compact) else { preconditionFailure("compact JSON does not parse") }
        precondition(again == value, "compact JSON parses to another value")
        precondition(again.canonicalBytes == canonical, "canonical JSON is not a fixed point")
        if !canonical.contains(where: { $0 < 0x20 }) {
            precondition(compact == canonical, "compact JSON differs from canonical without control characters")
        }
    }

    static let admin = try? Curve25519.Signing.PrivateKey(rawRepresentation: Array(repeating: UInt8(0x42), count: 32))
    static let trust: SiteTrust = {
        let raw = admin!.publicKey.rawRepresentation
        let key = TUFKey(keyType: "ed25519", scheme: "ed25519", publicValue: raw.map { String(format2: $0) }.joined())
        return try! SiteTrust(site: "fuzz-site", threshold: 1, admins: [key])
    }()

    /// A signed command as the admin API and the mesh receive it (first byte: what else the
    /// bytes are read as — a site trust file, an `OTAMesh-Sig` header): the envelope, its
    /// signature check, and the rollout plan or control it carries.
    @Sendable static func signedCommand(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let mode = input.pick(3)
        let bytes = input.rest()
        switch mode {
        case 1:
            _ = try? SiteTrust(bytes: bytes, file: "site-trust.json")
            return
        case 2:
            let header = String(decoding: bytes, as: UTF8.self)
            guard let credentials = try? SignedRequest.parse(header) else { return }
            _ = try? SignedRequest.verify(credentials, method: "POST", target: "/api/v1/rollouts", trust: trust, now: now)
            return
        default:
            break
        }
        guard let command = try? SignedCommand(bytes: bytes, file: "command.json") else { return }
        _ = try? command.verify(trust: trust, lastSequence: nil)
        _ = try? command.verify(trust: trust, lastSequence: 1)
        _ = command.compactBytes
        if let plan = try? RolloutPlan(json: command.payload) {
            _ = plan.json
        }
        _ = try? RolloutControl(command: command)
        let copy = CommandCopy(command)
        // Replication: the copy rebuilds the command, and its records decode back to the copy.
        precondition(copy.command != nil, "a parsed command does not rebuild from its copy")
        let parts = RolloutRecords.command(copy, rollout: "r-0123456789ab")
        if parts.count <= RolloutRecords.maxParts {
            let decoded = RolloutRecords.decode(parts.map { RolloutRecords.Entry(key: $0.key, owner: "gw-1", value: $0.value) })
            precondition(
                decoded.rollouts["r-0123456789ab"]?.commands[copy.sequence]?[copy.bodyHash] == copy,
                "a command's rollout records do not decode back to it: \(decoded.problems)")
        }
        var cache = VerificationCache()
        var state = RolloutState(id: command.payload["id"]?.stringValue ?? "r-0123456789ab")
        state.add(copy)
        _ = RolloutView(state: state, trust: trust, cache: &cache)
    }

    /// Rollout records as peers write them: `key\towner\tvalue` lines, merged into rollout
    /// states and their views.
    @Sendable static func rolloutRecords(_ data: [UInt8]) {
        var entries: [RolloutRecords.Entry] = []
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            let fields = line.split(separator: UInt8(ascii: "\t"), maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            entries.append(
                .init(
                    key: String(decoding: fields[0], as: UTF8.self), owner: String(decoding: fields[1], as: UTF8.self),
                    value: Array(fields[2])))
        }
        decodeRollouts(entries)
    }

    static func decodeRollouts(_ entries: [RolloutRecords.Entry]) {
        let decoded = RolloutRecords.decode(entries)
        var cache = VerificationCache()
        let device = DeviceFacts(id: "aa:bb:cc:dd:ee:ff", hardware: "esp32", gateway: "gw-1")
        for state in decoded.rollouts.values {
            let view = RolloutView(state: state, trust: trust, cache: &cache)
            let millis = now * 1000
            _ = view.haltDue(now: millis, gateway: "gw-1")
            _ = view.stageDue(now: millis, gateway: "gw-1", members: 3, censusGateways: 2)
            _ = view.completionDue(now: millis, gateway: "gw-1", members: 3, censusGateways: 2)
            _ = view.covers(device)
        }
    }

    // MARK: Configuration

    /// The agent's YAML config file; with a first byte ≥ 0x80, the site keyring file instead.
    @Sendable static func configYAML(_ data: [UInt8]) {
        if let first = data.first, first >= 0x80 {
            _ = try? SiteKeyringFile.decode(Array(data.dropFirst()), file: "site.keyring")
            return
        }
        var configuration = AgentConfiguration(nodeName: "fuzz")
        try? configuration.apply(yaml: String(decoding: data, as: UTF8.self), source: "otamesh.yaml")
    }

    /// A lab topology file (networks, gateways, devices, scenario).
    @Sendable static func topology(_ data: [UInt8]) {
        _ = try? TopologyFile.parse(String(decoding: data, as: UTF8.self), source: "fuzz.yaml", baseDirectory: "/nonexistent")
    }

    // MARK: Push devices

    static let pushImage = PushImage(
        path: "lamp/esp32/2.0.0.bin", sha256: "ab", length: 1000, version: "2.0.0", file: "/dev/null",
        url: "http://127.0.0.1:8070/v1/targets/lamp/esp32/2.0.0.bin", variant: "esp32")
    static func device(_ family: DeviceFamily) -> PushTarget {
        PushTarget(id: "d-1", family: family, host: "127.0.0.1", port: 80, variant: "esp32", version: "1.0.0")
    }
    static let chips: [String?] = ["esp32", "esp8266", "esp32s3", nil]

    /// ArduinoOTA / ESPHome native OTA: the device's UDP and TCP answers in any order, to the
    /// push machine of either dialect (byte 1: dialect and password), and the wire helpers.
    @Sendable static func arduinoOTA(_ data: [UInt8]) {
        _ = ArduinoOTAWire.reply(data)
        var acks = ArduinoOTAWire.Acknowledgements()
        acks.add(data)
        _ = (acks.ok, acks.error, acks.errorComplete)
        var input = FuzzInput(data)
        let setup = input.byte()
        let dialect: ArduinoOTADialect = setup & 1 == 0 ? .arduino : .esphome
        let credentials = setup & 2 == 0 ? nil : PushCredentials(username: "", password: "pw")
        var push = ArduinoOTAPush(image: pushImage, target: device(.arduinoOTA), dialect: dialect, credentials: credentials, now: 0)
        feed(&input) { input, clock in
            let event: ArduinoOTAPush.Event
            switch input.pick(14) {
            case 0: event = .started
            case 1: event = .imageRead(.init(size: Int64(input.u16()), md5: String(repeating: "a1", count: 16), chip: input.pick(chips)))
            case 2: event = .imageUnreadable(input.text())
            case 3: event = .listening(port: input.u16())
            case 4: event = .datagram(input.chunk())
            case 5: event = .connected
            case 6: event = .received(input.chunk())
            case 7: event = .sending
            case 8: event = .sent
            case 9: event = .closed(input.text(), sentBytes: Int64(input.u16()))
            case 10: event = .linkFailed(input.text())
            case 11: event = .version(input.text(), variant: input.byte() % 2 == 0 ? nil : input.text())
            case 12: event = .versionFailed(input.text())
            default: event = .tick
            }
            _ = push.handle(event, now: clock)
        }
    }

    /// Feeds a push state machine events drawn from the input: at most 512, each 0–63.75 s
    /// after the one before.
    static func feed(_ input: inout FuzzInput, _ step: (inout FuzzInput, Int64) -> Void) {
        var clock: Int64 = 0
        for _ in 0..<512 where !input.isEmpty {
            clock += Int64(input.byte()) * 250
            step(&input, clock)
        }
    }

    /// projectMM's `GET /api/state` answer.
    @Sendable static func projectMMStatus(_ data: [UInt8]) {
        guard let status = try? ProjectMMStatus.parse(data) else { return }
        _ = status.phase.description
        if let firmware = status.firmware { _ = ProjectMMVariant.key(firmware) }
    }

    static let statuses = [200, 202, 204, 301, 400, 401, 403, 404, 500, 503, 0, -1]

    /// HTTP upload forms: the version endpoint's body (JSON or text), and the upload machine
    /// fed answers (status, body) in any order, both dialects.
    @Sendable static func httpUploadAnswer(_ data: [UInt8]) {
        _ = HTTPUploadAdapter.version(fromBody: String(decoding: data, as: UTF8.self))
        var input = FuzzInput(data)
        let setup = input.byte()
        let dialect: HTTPUploadPush.Dialect = setup & 1 == 0 ? .updateServer : .elegantOTA3
        var push = HTTPUploadPush(image: pushImage, target: device(.httpUpload), authenticates: setup & 2 != 0, dialect: dialect, now: 0)
        feed(&input) { input, clock in
            let event: HTTPUploadPush.Event
            switch input.pick(10) {
            case 0: event = .started
            case 1: event = .startAnswered(status: input.pick(statuses), body: input.text())
            case 2: event = .startFailed(input.text())
            case 3: event = .sending
            case 4: event = .sent
            case 5: event = .uploaded(status: input.pick(statuses), body: input.text())
            case 6: event = .uploadFailed(input.text(), sentBytes: Int64(input.u16()))
            case 7: event = .version(HTTPUploadAdapter.version(fromBody: input.text()) ?? "")
            case 8: event = .versionFailed(input.text())
            default: event = .tick
            }
            _ = push.handle(event, now: clock)
        }
    }

    // MARK: Bundles

    /// `otamesh import` of a bundle: the tar reader, then every entry as the import sorts it
    /// (metadata files through their role's parser, the target list split into paths).
    @Sendable static func bundleTar(_ data: [UInt8]) {
        guard let entries = try? Tar.read(data, file: "bundle.tar") else { return }
        for entry in entries {
            if entry.path.hasPrefix("metadata/") {
                let name = String(entry.path.dropFirst(9))
                switch name {
                case "root.json": _ = try? RootMetadata(bytes: entry.bytes)
                case "timestamp.json": _ = try? TimestampMetadata(bytes: entry.bytes)
                case "snapshot.json": _ = try? SnapshotMetadata(bytes: entry.bytes)
                default: _ = try? TargetsMetadata(bytes: entry.bytes, file: name)
                }
            } else if entry.path == "targets.list" {
                _ = String(decoding: entry.bytes, as: UTF8.self).split(separator: "\n")
            }
        }
        // What reads writes back to an archive that reads the same.
        if let again = try? Tar.write(entries) {
            precondition((try? Tar.read(again, file: "again.tar")) == entries, "Tar: read(write(e)) != e")
        }
    }

    // MARK: mDNS

    static let serviceTypes = DeviceProbe.serviceTypes

    /// mDNS TXT records (length-prefixed strings, as the DNS-SD browse hands them over): a
    /// gateway's advert, and a device's service with the probe answers that follow it.
    @Sendable static func mdnsTXT(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let type = input.pick(serviceTypes)
        let port = input.u16()
        let txt = input.chunk()
        let answer = input.rest()
        _ = DiscoveryTXT.peer(instance: "gw-1", txt: txt, resolvedPort: UInt16(port), hostAddresses: ["127.0.0.1", "::1"])
        let pairs = DiscoveryTXT.decode(txt)
        let service = DeviceProbe.Service(type: type, name: "dev", address: "127.0.0.1", port: port, txt: pairs)
        var answers: DeviceProbe.Answers = [:]
        for (index, request) in DeviceProbe.requests(for: service).enumerated() {
            answers[request] = index % 3 == 2 ? nil : (status: index == 0 ? 200 : 404, body: answer)
        }
        _ = DeviceProbe.classify(service, answers: answers)
        // Every request answered 200 with the body.
        for request in DeviceProbe.requests(for: service) { answers[request] = (status: 200, body: answer) }
        _ = DeviceProbe.classify(service, answers: answers)
    }
}
