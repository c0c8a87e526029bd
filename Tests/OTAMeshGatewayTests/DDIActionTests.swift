import Crypto
import Foundation
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGateway

/// hawkBit DDI actions through the device API (routes, registry and the feedback they apply),
/// without sockets: what a DDI client sees across polls, and what the rollouts hear.
@Suite("DDI actions")
struct DDIActionTests {
    static let device = "door-7"
    static let payload = Array("an image without a version".utf8)
    static let sha256 = SHA256.hash(data: payload).map { String(format: "%02x", $0) }.joined()
    static let sha1 = Insecure.SHA1.hash(data: payload).map { String(format: "%02x", $0) }.joined()
    static let target = ServedTarget(path: "linux/door.swu", sha256: sha256, size: Int64(payload.count), version: nil, hardware: nil)

    /// Rollouts that answer what the test says and record what they hear.
    final class ScriptedRollouts: DeviceRollouts, @unchecked Sendable {
        let lock = NIOLock()
        var next: RolloutAnswer = .none
        var heard: [RolloutNode.DeviceReport] = []
        func answer(_ query: DeviceQuery) -> RolloutAnswer { lock.withLock { next } }
        func concluded(_ query: DeviceQuery, rollout: String, upToDate: Bool) {}
        func transfer(sha256: String, device: String?, address: String, completed: Bool) {}
        func configurationReported(_ query: DeviceQuery) {}
        func reported(device: String, rollout: String, _ report: RolloutNode.DeviceReport) { lock.withLock { heard.append(report) } }
        func say(_ answer: RolloutAnswer) { lock.withLock { next = answer } }
        var reports: [RolloutNode.DeviceReport] { lock.withLock { heard } }
    }

    struct Gateway {
        let dir: TemporaryDirectory
        let registry: DeviceRegistry
        let api: DeviceAPI
        let blobPath: String

        init(dir: TemporaryDirectory) throws {
            self.dir = dir
            blobPath = dir.file("blob")
            FileManager.default.createFile(atPath: blobPath, contents: Data(DDIActionTests.payload))
            registry = try DeviceRegistry(path: dir.file("devices.sqlite"))
            var settings = DDISettings()
            settings.authentication = .anonymous
            let access = DDIAccess(settings: settings, secrets: DeviceSecretStore(path: dir.file("secrets.json")))
            let blob = ServedBlob(sha256: DDIActionTests.sha256, size: Int64(DDIActionTests.payload.count), addedAt: 0)
            // No transport digests from a store: the shell computes SHA-1 and MD5 from the file.
            api = DeviceAPI(catalog: ServingCatalog(blobs: [blob], targets: [DDIActionTests.target]), registry: registry, ddi: access)
        }

        func send(_ method: String, _ resource: String, body: String? = nil) throws -> DeviceResponse {
            var request = DeviceRequest(
                method: method, path: "/DEFAULT/controller/v1/\(DDIActionTests.device)\(resource)", query: [:], headers: ["host": "gw:8080"],
                clientAddress: "10.0.0.9")
            request.body = Array((body ?? "").utf8)
            switch api.handle(request) {
            case .response(let response): return response
            case .needDigests(let sha256):
                try api.computeDigests(sha256: sha256, path: blobPath)
                guard case .response(let response) = api.handle(request) else { throw DDIError("asked twice") }
                return response
            case .needConfiguration, .needPieces: throw DDIError("configuration or pieces asked")
            }
        }

        func json(_ resource: String) throws -> [String: Any] {
            let response = try send("GET", resource)
            #expect(response.status == 200, "\(resource): \(response.status)")
            let bytes: [UInt8] = response.body.flatMap { part -> [UInt8] in if case .bytes(let b) = part { b } else { [] } }
            return try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        }

        /// The links of a poll, as their last path components (`deploymentBase/123`).
        func poll() throws -> [String: String] {
            let links = try json("")["_links"] as? [String: [String: String]] ?? [:]
            return links.compactMapValues { $0["href"] }.mapValues { href in
                let path = href.split(separator: "?").first.map(String.init) ?? href
                return path.split(separator: "/").suffix(2).joined(separator: "/")
            }.filter { $0.key != "configData" }
        }

        func feedback(_ link: String, execution: String, result: String) throws {
            let id = link.split(separator: "/").last ?? ""
            let body = #"{"id":"\#(id)","status":{"execution":"\#(execution)","result":{"finished":"\#(result)"},"details":["test"]}}"#
            #expect(try send("POST", "/\(link)/feedback", body: body).status == 200)
        }
    }

    @Test("a manual assignment of a target without a version: SHA-1 computed from the file, installed once, recorded by digest and not offered again")
    func versionlessAssignment() throws {
        let dir = try TemporaryDirectory()
        let gateway = try Gateway(dir: dir)
        try gateway.registry.assign(Self.device, target: Self.target.path, at: 1)
        let link = try #require(try gateway.poll()["deploymentBase"])
        let deployment = try #require(try gateway.json("/\(link)")["deployment"] as? [String: Any])
        let chunk = try #require((deployment["chunks"] as? [[String: Any]])?.first)
        let hashes = try #require((chunk["artifacts"] as? [[String: Any]])?.first?["hashes"] as? [String: String])
        #expect(hashes["sha1"] == Self.sha1 && hashes["sha256"] == Self.sha256)

        try gateway.feedback(link, execution: "closed", result: "success")
        #expect(gateway.registry.device(Self.device)?.version == "sha256:\(Self.sha256)")
        #expect(try gateway.poll().isEmpty, "installed: not offered again")
        #expect(gateway.registry.device(Self.device)?.lastAnswer?.hasPrefix("up to date") == true)
    }

    @Test("a failed manual action is not offered again, across a restart, until the admin assigns again")
    func failedAssignmentPersists() throws {
        let dir = try TemporaryDirectory()
        do {
            let gateway = try Gateway(dir: dir)
            try gateway.registry.assign(Self.device, target: Self.target.path, at: 1)
            let link = try #require(try gateway.poll()["deploymentBase"])
            try gateway.feedback(link, execution: "closed", result: "failure")
            #expect(try gateway.poll().isEmpty)
            try gateway.registry.flush()
        }
        let restarted = try Gateway(dir: dir)
        #expect(try restarted.poll().isEmpty, "the failure survived the restart")
        #expect(restarted.registry.device(Self.device)?.lastAnswer?.contains("reassign to retry") == true)
        try restarted.registry.assign(Self.device, target: Self.target.path, at: 2)
        #expect(try restarted.poll()["deploymentBase"] != nil, "assigned again: offered again")
    }

    @Test("outside the window: download ahead with update skip; SWUpdate's skip-close counts for nothing; in the window the same action installs")
    func downloadAhead() throws {
        let dir = try TemporaryDirectory()
        let gateway = try Gateway(dir: dir)
        let rollouts = ScriptedRollouts()
        gateway.api.attach(rollouts)
        rollouts.say(.prefetch(path: Self.target.path, rollout: "r-1", why: "rollout r-1: outside the maintenance window 22:00-04:00 UTC"))
        let link = try #require(try gateway.poll()["deploymentBase"])
        let ahead = try #require(try gateway.json("/\(link)")["deployment"] as? [String: Any])
        #expect(ahead["download"] as? String == "forced" && ahead["update"] as? String == "skip")
        #expect(ahead["maintenanceWindow"] as? String == "unavailable")

        try gateway.feedback(link, execution: "closed", result: "success")
        #expect(rollouts.reports.isEmpty, "a skipped update is not a success")
        #expect(gateway.registry.device(Self.device)?.version == nil)
        #expect(try gateway.poll().isEmpty, "closed without installing: not linked again before the window")

        rollouts.say(.offer(path: Self.target.path, rollout: "r-1"))
        #expect(try gateway.poll()["deploymentBase"] == link, "the same action, now to install")
        let install = try #require(try gateway.json("/\(link)")["deployment"] as? [String: Any])
        #expect(install["update"] as? String == "forced" && install["maintenanceWindow"] == nil)
        try gateway.feedback(link, execution: "closed", result: "success")
        #expect(rollouts.reports == [.succeeded])
    }

    @Test("a halt cancels an action not yet transferring: cancelAction, the device's answer to the rollout, a new action on resume")
    func cancelation() throws {
        let dir = try TemporaryDirectory()
        let gateway = try Gateway(dir: dir)
        let rollouts = ScriptedRollouts()
        gateway.api.attach(rollouts)
        rollouts.say(.offer(path: Self.target.path, rollout: "r-1"))
        let first = try #require(try gateway.poll()["deploymentBase"])

        rollouts.say(.cancel(path: Self.target.path, rollout: "r-1", why: "rollout r-1 halted: bad batch"))
        let links = try gateway.poll()
        let cancel = try #require(links["cancelAction"])
        #expect(links["deploymentBase"] == nil)
        #expect(cancel.split(separator: "/").last == first.split(separator: "/").last)
        let body = try gateway.json("/\(cancel)")
        #expect((body["cancelAction"] as? [String: String])?["stopId"] == String(first.split(separator: "/").last ?? ""))
        #expect(try gateway.send("GET", "/\(first)").status == 404, "a canceled action is not deployed")

        try gateway.feedback(cancel, execution: "closed", result: "success")
        #expect(rollouts.reports == [.canceled])
        #expect(try gateway.poll().isEmpty, "canceled: nothing linked while halted")
        #expect(rollouts.reports == [.canceled, .canceled], "its standing answer reaches the rollout on each poll (an abort ends it)")

        rollouts.say(.offer(path: Self.target.path, rollout: "r-1"))
        let again = try #require(try gateway.poll()["deploymentBase"])
        #expect(again != first, "resumed as a new action: clients close canceled ids")
        try gateway.feedback(again, execution: "closed", result: "success")
        #expect(rollouts.reports.last == .succeeded)
    }

    @Test("a device that refuses the cancelation goes on; its attempt finishes and counts")
    func cancelRefused() throws {
        let dir = try TemporaryDirectory()
        let gateway = try Gateway(dir: dir)
        let rollouts = ScriptedRollouts()
        gateway.api.attach(rollouts)
        rollouts.say(.cancel(path: Self.target.path, rollout: "r-1", why: "rollout r-1 was aborted"))
        let cancel = try #require(try gateway.poll()["cancelAction"])
        try gateway.feedback(cancel, execution: "rejected", result: "none")
        #expect(rollouts.reports.isEmpty)
        let id = cancel.split(separator: "/").last ?? ""
        #expect(try gateway.poll() == ["deploymentBase": "deploymentBase/\(id)"], "refused: the same action, deployed, not asked again")
        #expect(try gateway.send("GET", "/deploymentBase/\(id)").status == 200)
        try gateway.feedback("deploymentBase/\(id)", execution: "closed", result: "failure")
        #expect(rollouts.reports == [.failed("test")])
    }
}
