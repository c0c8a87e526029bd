import OTAMeshCommon
import OTAMeshTransfer
import Testing

@testable import OTAMeshGateway

/// The pure serving core: HTTP semantics of one blob, and each family's answer.
@Suite("device serving core")
struct DeviceRoutesTests {
    static let blob = ServedBlob(sha256: String(repeating: "ab", count: 32), size: 1000, addedAt: 784_111_777)
    static let target = ServedTarget(path: "esp32/app/2.0.0.bin", sha256: blob.sha256, size: 1000, version: "2.0.0", hardware: "esp32")
    static let md5 = String(repeating: "cd", count: 16)
    static let appended = String(repeating: "ef", count: 32)

    static func context(assigned: [String: String] = ["aa:bb:cc:dd:ee:ff": target.path], md5Known: Bool = true) -> DeviceRoutes.Context {
        DeviceRoutes.Context(
            catalog: ServingCatalog(blobs: [blob], targets: [target]), assignment: { assigned[$0] },
            digests: { md5Known && $0 == blob.sha256 ? .init(md5: md5, appendedDigest: appended) : nil })
    }

    static func get(_ target: String, method: String = "GET", headers: [String: String] = [:]) -> DeviceRequest {
        let (path, query) = DeviceRequest.splitTarget(target)
        return DeviceRequest(method: method, path: path, query: query, headers: headers, clientAddress: "10.0.0.7")
    }

    static func response(_ outcome: DeviceRoutes.Outcome) -> (DeviceResponse, DeviceSighting?) {
        guard case .response(let response, let sighting, _, _) = outcome else {
            Issue.record("expected a response, got \(outcome)")
            return (.empty(0), nil)
        }
        return (response, sighting)
    }

    // MARK: HTTP semantics

    @Test("IMF-fixdate matches RFC 9110's example and known instants")
    func httpDate() {
        #expect(HTTPDate.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDate.format(4_102_444_800) == "Fri, 01 Jan 2100 00:00:00 GMT")
    }

    @Test("HEAD carries exactly the GET headers, for full, ranged, multipart and 416 answers")
    func headEqualsGet() {
        for range in [nil, "bytes=0-99", "bytes=0-1,10-20", "bytes=5000-", "bytes=-10"] {
            var headers: [String: String] = [:]
            if let range { headers["range"] = range }
            let get = FileServing.respond(to: Self.get("/x", headers: headers), blob: Self.blob)
            let head = FileServing.respond(to: Self.get("/x", method: "HEAD", headers: headers), blob: Self.blob)
            #expect(get == head, "range \(range ?? "none")")
        }
    }

    @Test("full, single range, suffix, multipart and unsatisfiable answers")
    func ranges() {
        let full = FileServing.respond(to: Self.get("/x"), blob: Self.blob)
        #expect(full.status == 200 && full.contentLength == 1000)
        #expect(full.header("accept-ranges") == "bytes")
        #expect(full.header("etag") == "\"\(Self.blob.sha256)\"")
        #expect(full.header("last-modified") == "Sun, 06 Nov 1994 08:49:37 GMT")

        let one = FileServing.respond(to: Self.get("/x", headers: ["range": "bytes=100-199"]), blob: Self.blob)
        #expect(one.status == 206 && one.header("content-range") == "bytes 100-199/1000" && one.body == [.file(ByteRange(first: 100, last: 199))])

        // esp_https_ota's first request may end one past the last byte: clamp.
        let clamped = FileServing.respond(to: Self.get("/x", headers: ["range": "bytes=0-1000"]), blob: Self.blob)
        #expect(clamped.status == 206 && clamped.header("content-range") == "bytes 0-999/1000")

        let suffix = FileServing.respond(to: Self.get("/x", headers: ["range": "bytes=-10"]), blob: Self.blob)
        #expect(suffix.header("content-range") == "bytes 990-999/1000")

        let multi = FileServing.respond(to: Self.get("/x", headers: ["range": "bytes=0-1,998-"]), blob: Self.blob)
        #expect(multi.status == 206)
        #expect(multi.header("content-type")?.hasPrefix("multipart/byteranges; boundary=") == true)
        let text = multi.body.compactMap { if case .bytes(let b) = $0 { String(decoding: b, as: UTF8.self) } else { nil } }.joined()
        #expect(text.contains("Content-Range: bytes 0-1/1000") && text.contains("Content-Range: bytes 998-999/1000"))
        #expect(multi.contentLength == Int64(text.utf8.count) + 4)

        let beyond = FileServing.respond(to: Self.get("/x", headers: ["range": "bytes=1000-"]), blob: Self.blob)
        #expect(beyond.status == 416 && beyond.header("content-range") == "bytes */1000" && beyond.contentLength == 0)
    }

    @Test(
        "malformed Range headers are ignored (200), never a crash",
        arguments: [
            "bytes=", "bytes=5-2", "bytes=99999999999999999999-", "bytes=-", "bytes=a-b", "items=0-1", "bytes=0-1,,", "bytes= - ",
            "1,000 ranges",
        ])
    func malformed(_ label: String) {
        let header = label == "1,000 ranges" ? "bytes=" + Array(repeating: "1-2", count: 1000).joined(separator: ",") : label
        let answer = FileServing.respond(to: Self.get("/x", headers: ["range": header]), blob: Self.blob)
        #expect(answer.status == 200 && answer.contentLength == 1000)
    }

    @Test("If-Range with another validator sends the whole image; with ours, the range; If-None-Match gives 304")
    func validators() {
        let stale = FileServing.respond(to: Self.get("/x", headers: ["range": "bytes=500-", "if-range": "\"other\""]), blob: Self.blob)
        #expect(stale.status == 200 && stale.contentLength == 1000)
        let fresh = FileServing.respond(to: Self.get("/x", headers: ["range": "bytes=500-", "if-range": Self.blob.etag]), blob: Self.blob)
        #expect(fresh.status == 206 && fresh.contentLength == 500)
        let byDate = FileServing.respond(
            to: Self.get("/x", headers: ["range": "bytes=500-", "if-range": "Sun, 06 Nov 1994 08:49:37 GMT"]), blob: Self.blob)
        #expect(byDate.status == 206)
        let cached = FileServing.respond(to: Self.get("/x", headers: ["if-none-match": "W/\"x\", \(Self.blob.etag)"]), blob: Self.blob)
        #expect(cached.status == 304 && cached.contentLength == 0)
    }

    // MARK: Routes

    @Test("unknown routes 404, other methods 405, targets and blobs by path and hash")
    func routing() {
        let ctx = Self.context()
        #expect(Self.response(DeviceRoutes.handle(Self.get("/nope"), context: ctx)).0.status == 404)
        #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/targets/esp32/app/2.0.0.bin", method: "POST"), context: ctx)).0.status == 405)
        let byPath = Self.response(DeviceRoutes.handle(Self.get("/v1/targets/esp32/app/2.0.0.bin"), context: ctx)).0
        #expect(byPath.status == 200 && byPath.blobSHA256 == Self.blob.sha256)
        #expect(byPath.header("content-disposition") == "attachment; filename=\"2.0.0.bin\"")
        #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/blobs/sha256/\(Self.blob.sha256.uppercased())"), context: ctx)).0.status == 200)
        #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/blobs/sha256/\(String(repeating: "0", count: 64))"), context: ctx)).0.status == 404)
        // A target whose blob is not cached is never served.
        let missing = DeviceRoutes.Context(catalog: ServingCatalog(targets: [Self.target]), assignment: { _ in nil })
        #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/targets/esp32/app/2.0.0.bin"), context: missing)).0.status == 404)
    }

    @Test("JSON manifest: 204 when unassigned, same version or incompatible hardware; else version, url, sha256, size")
    func jsonManifest() {
        let ctx = Self.context()
        let (offer, sighting) = Self.response(
            DeviceRoutes.handle(
                Self.get("/v1/devices/AA-BB-CC-DD-EE-FF/update?hardware=esp32&version=1.0.0", headers: ["host": "gw:8070"]), context: ctx))
        #expect(offer.status == 200)
        let body = offer.body.compactMap { if case .bytes(let b) = $0 { String(decoding: b, as: UTF8.self) } else { nil } }.joined()
        #expect(
            body
                == "{\"sha256\":\"\(Self.blob.sha256)\",\"size\":1000,\"url\":\"http://gw:8070/v1/targets/esp32/app/2.0.0.bin?device=aa%3Abb%3Acc%3Add%3Aee%3Aff\",\"version\":\"2.0.0\"}\n"
        )
        #expect(
            sighting
                == DeviceSighting(
                    id: "aa:bb:cc:dd:ee:ff", family: .generic, hardware: "esp32", version: "1.0.0",
                    address: "10.0.0.7", answer: "offered esp32/app/2.0.0.bin"))
        for query in ["hardware=esp32&version=2.0.0", "hardware=esp32s3&version=1.0.0"] {
            #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/devices/aa:bb:cc:dd:ee:ff/update?\(query)"), context: ctx)).0.status == 204)
        }
        #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/devices/other/update"), context: ctx)).0.status == 204)
        // esp32-eth… variants take esp32 firmware (projectMM's rule).
        #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/devices/aa:bb:cc:dd:ee:ff/update?hardware=esp32-eth01"), context: ctx)).0.status == 200)
    }

    static let espHeaders = [
        "x-esp8266-sta-mac": "AA:BB:CC:DD:EE:FF", "x-esp8266-ap-mac": "AA:BB:CC:DD:EE:F0", "x-esp8266-free-space": "2000000",
        "x-esp8266-sketch-size": "400000", "x-esp8266-sketch-md5": String(repeating: "11", count: 16),
        "x-esp8266-chip-size": "4194304", "x-esp8266-sdk-version": "2.2.2", "x-esp8266-mode": "sketch",
    ]

    @Test("Arduino httpUpdate: MD5 first, then 200 with x-MD5; 304 when the sketch MD5 matches, space is short or mode is spiffs")
    func httpUpdate() {
        let esp32 = ServedTarget(path: Self.target.path, sha256: Self.blob.sha256, size: 1000, version: "2.0.0", hardware: "esp8266")
        let ctx = DeviceRoutes.Context(
            catalog: ServingCatalog(blobs: [Self.blob], targets: [esp32]),
            assignment: { $0 == "aa:bb:cc:dd:ee:ff" ? esp32.path : nil })
        #expect(DeviceRoutes.handle(Self.get("/v1/esp/update", headers: Self.espHeaders), context: ctx) == .needDigests(Self.blob.sha256))
        let known = DeviceRoutes.Context(
            catalog: ctx.catalog, assignment: ctx.assignment,
            digests: { _ in .init(md5: Self.md5, appendedDigest: nil) })
        let (offer, sighting) = Self.response(DeviceRoutes.handle(Self.get("/v1/esp/update", headers: Self.espHeaders), context: known))
        #expect(offer.status == 200 && offer.header("x-md5") == Self.md5 && offer.contentLength == 1000)
        #expect(sighting?.family == .esp8266HTTPUpdate && sighting?.hardware == "esp8266")

        var same = Self.espHeaders
        same["x-esp8266-sketch-md5"] = Self.md5
        #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/esp/update", headers: same), context: known)).0.status == 304)
        var small = Self.espHeaders
        small["x-esp8266-free-space"] = "999"
        let (tooBig, why) = Self.response(DeviceRoutes.handle(Self.get("/v1/esp/update", headers: small), context: known))
        #expect(tooBig.status == 304 && why?.answer.contains("999 free") == true)
        var fs = Self.espHeaders
        fs["x-esp8266-mode"] = "spiffs"
        // Filesystem mode asks for the device's configuration image, never its firmware.
        #expect(DeviceRoutes.handle(Self.get("/v1/esp/update", headers: fs), context: known) == .needConfiguration("aa:bb:cc:dd:ee:ff"))
        #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/esp/update"), context: known)).0.status == 403)
    }

    @Test(
        "httpUpdate filesystem mode: the device's image with x-MD5; 304 once it reports the image's config-id; a password only to its address; why not, as its last answer"
    )
    func filesystemMode() {
        let image = ServedBlob(sha256: String(repeating: "12", count: 32), size: 0x20000, addedAt: 0)
        var offer = ConfigurationOffer(
            app: "weather@2.1.0", configID: "cfg-00112233aabbccdd", blob: image, md5: Self.md5, holdsSecret: true, address: "10.0.0.7")
        var fs = Self.espHeaders
        fs["x-esp8266-mode"] = "spiffs"
        func ask(_ headers: [String: String], from address: String = "10.0.0.7", _ offer: ConfigurationOffer) -> (DeviceResponse, DeviceSighting?) {
            var context = Self.context()
            context.configuration = { $0 == "aa:bb:cc:dd:ee:ff" ? offer : nil }
            var request = Self.get("/v1/esp/update", headers: headers)
            request.clientAddress = address
            return Self.response(DeviceRoutes.handle(request, context: context))
        }
        let (served, sighting) = ask(fs, offer)
        #expect(served.status == 200 && served.contentLength == 0x20000 && served.header("x-md5") == Self.md5 && served.blobSHA256 == image.sha256)
        #expect(
            sighting?.answer == "offered filesystem cfg-00112233aabbccdd (weather@2.1.0)" && sighting?.version == nil, "the version header is the config id")
        var current = fs
        current["x-esp8266-version"] = "cfg-00112233aabbccdd"
        #expect(ask(current, offer).0.status == 304)
        let (refused, why) = ask(fs, from: "10.0.0.9", offer)
        #expect(refused.status == 403 && refused.blobSHA256 == nil)
        #expect(why?.answer.contains("goes only to 10.0.0.7, not 10.0.0.9") == true, "\(String(describing: why))")
        offer.holdsSecret = false
        #expect(ask(fs, from: "10.0.0.9", offer).0.status == 200, "without a password the image is not withheld")
        let (none, missing) = ask(fs, ConfigurationOffer(app: "weather@2.1.0", problem: "weather@2.1.0: required ssid not set"))
        #expect(none.status == 304 && missing?.answer == "filesystem: weather@2.1.0: required ssid not set")
    }

    @Test("ESP32 HTTPUpdate: 304 when the running sketch's SHA-256 is the image's appended digest (or its file hash)")
    func esp32SHA() {
        for reported in [Self.appended.uppercased(), Self.blob.sha256.uppercased()] {
            let headers = [
                "x-esp32-sta-mac": "AA:BB:CC:DD:EE:FF", "x-esp32-mode": "sketch", "x-esp32-free-space": "1900000",
                "x-esp32-sketch-sha256": reported,
            ]
            #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/esp/update", headers: headers), context: Self.context())).0.status == 304)
        }
        let other = ["x-esp32-sta-mac": "AA:BB:CC:DD:EE:FF", "x-esp32-mode": "sketch", "x-esp32-sketch-sha256": String(repeating: "A", count: 64)]
        #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/esp/update", headers: other), context: Self.context())).0.status == 200)
    }

    @Test("FOTA: the sibling user1/user2 image of the assignment, HEAD with its length")
    func fota() {
        let user1 = ServedBlob(sha256: String(repeating: "01", count: 32), size: 300, addedAt: 0)
        let user2 = ServedBlob(sha256: String(repeating: "02", count: 32), size: 310, addedAt: 0)
        let catalog = ServingCatalog(
            blobs: [user1, user2],
            targets: [
                ServedTarget(path: "fota/v1.0.3/user1.bin", sha256: user1.sha256, size: 300, version: "v1.0.3t45772(a)"),
                ServedTarget(path: "fota/v1.0.3/user2.bin", sha256: user2.sha256, size: 310, version: "v1.0.3t45772(a)"),
            ])
        let ctx = DeviceRoutes.Context(catalog: catalog, assignment: { _ in "fota/v1.0.3/user1.bin" })
        let head = Self.response(DeviceRoutes.handle(Self.get("/v1/fota/dev1/user2.bin?version=v1.0.2t45772(a)", method: "HEAD"), context: ctx)).0
        #expect(head.status == 200 && head.contentLength == 310 && head.blobSHA256 == user2.sha256)
        #expect(Self.response(DeviceRoutes.handle(Self.get("/v1/fota/dev1/user2.bin?version=v1.0.3t45772(a)"), context: ctx)).0.status == 404)
    }

    @Test("WiPhone: top-level version and url keys (NanoIni section 0), empty ini when nothing is assigned")
    func wiphone() {
        let ctx = Self.context(assigned: ["ip:10.0.0.7": Self.target.path])
        let request = DeviceRequest(
            method: "GET", path: "/v1/wiphone/WiPhone-phone.ini", headers: ["host": "gw.site"],
            clientAddress: "10.0.0.7", isTLS: true)
        let (ini, sighting) = Self.response(DeviceRoutes.handle(request, context: ctx))
        let text = ini.body.compactMap { if case .bytes(let b) = $0 { String(decoding: b, as: UTF8.self) } else { nil } }.joined()
        #expect(text == "version=2.0.0\nurl=https://gw.site/v1/targets/esp32/app/2.0.0.bin\n")
        #expect(sighting?.id == "ip:10.0.0.7" && sighting?.family == .wiphone)
        let other = DeviceRequest(method: "GET", path: "/v1/wiphone/WiPhone-phone.ini", clientAddress: "10.0.0.8", isTLS: true)
        let (none, _) = Self.response(DeviceRoutes.handle(other, context: ctx))
        #expect(none.status == 200 && none.contentLength == 0)
    }

    @Test("device ids: MACs in any spelling become aa:bb:cc:dd:ee:ff; other ids are kept")
    func ids() {
        for raw in ["AA:BB:CC:DD:EE:FF", "aa-bb-cc-dd-ee-ff", "AABBCCDDEEFF"] {
            #expect(DeviceRegistry.normalizedID(raw) == "aa:bb:cc:dd:ee:ff")
        }
        #expect(DeviceRegistry.normalizedID("lobby-display") == "lobby-display")
        #expect(DeviceRegistry.normalizedID("ip:10.0.0.7") == "ip:10.0.0.7")
    }

    @Test("request targets: percent-decoded paths, query pairs")
    func targets() {
        let (path, query) = DeviceRequest.splitTarget("/v1/targets/a%20b/c.bin?version=1.0+rc&x&version=2")
        #expect(path == "/v1/targets/a b/c.bin")
        #expect(query == ["version": "1.0 rc", "x": ""])
    }

    // MARK: Rollouts, as directives

    @Test("with rollouts running the routes ask for their answer first, then decide on it and say what to tell them; they never call the rollouts")
    func rolloutDirectives() {
        var ctx = Self.context(assigned: [:])
        ctx.rolloutsActive = true
        let request = Self.get("/v1/devices/AA-BB-CC-DD-EE-FF/update?hardware=esp32&version=1.0.0")
        let query = DeviceQuery(id: "aa:bb:cc:dd:ee:ff", family: .generic, hardware: "esp32", version: "1.0.0", address: "10.0.0.7")
        #expect(DeviceRoutes.handle(request, context: ctx) == .needRolloutAnswer(query))

        // Offered by a rollout: served, and the rollout hears that its target went out.
        ctx.rolloutAnswer = (query, .offer(path: Self.target.path, rollout: "r-1"))
        guard case .response(let offer, let sighting, let conclusion, _) = DeviceRoutes.handle(request, context: ctx) else {
            Issue.record("expected a response")
            return
        }
        #expect(offer.status == 200 && sighting?.answer == "offered esp32/app/2.0.0.bin")
        #expect(conclusion == DeviceRoutes.RolloutConclusion(query: query, rollout: "r-1", upToDate: false))

        // Already on the target: nothing to download, and the rollout hears it is current.
        let current = Self.get("/v1/devices/aa:bb:cc:dd:ee:ff/update?hardware=esp32&version=2.0.0")
        var currentQuery = query
        currentQuery.version = "2.0.0"
        ctx.rolloutAnswer = (currentQuery, .offer(path: Self.target.path, rollout: "r-1"))
        guard case .response(let none, _, let upToDate, _) = DeviceRoutes.handle(current, context: ctx) else {
            Issue.record("expected a response")
            return
        }
        #expect(none.status == 204 && upToDate?.upToDate == true)

        // Held: told nothing, and there is nothing to conclude; an answer for another request is not reused.
        ctx.rolloutAnswer = (query, .hold("rollout r-1: halted"))
        guard case .response(let held, let heldSighting, let heldConclusion, _) = DeviceRoutes.handle(request, context: ctx) else {
            Issue.record("expected a response")
            return
        }
        #expect(held.status == 204 && heldSighting?.answer == "rollout r-1: halted" && heldConclusion == nil)
        #expect(DeviceRoutes.handle(current, context: ctx) == .needRolloutAnswer(currentQuery))
    }
}
