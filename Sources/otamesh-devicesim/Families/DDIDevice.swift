import Crypto
import Foundation

/// A Linux device running SWUpdate's suricatta hawkBit client (`suricatta/server_hawkbit.c`,
/// 2022.12), as the gateway sees it. Per poll:
/// 1. after an install (the "reboot"): `POST …/deploymentBase/{id}/feedback` closed/success
///    (SWUpdate's `-c 2` confirmation);
/// 2. `GET /{tenant}/controller/v1/{id}` (Authorization: `GatewayToken`/`TargetToken` when
///    given), JSON with `_links`;
/// 3. `configData` linked: `PUT` its attributes (`hardware`);
/// 4. `cancelAction` linked: `GET` it, `POST {href}/feedback` closed/success with its `stopId`;
/// 5. `deploymentBase` linked: `GET` it; `update: skip` is closed as a success ("Skipped
///    Update.") without downloading, as SWUpdate does; otherwise `proceeding` feedback, the
///    artifact downloaded (`download-http`), resumed with `Range: bytes=N-` after a cut, its size,
///    SHA-1 and SHA-256 checked, then closed/failure or an install: the device reports the chunk's
///    version and confirms on its next poll.
struct DDIDevice: SteppedDevice {
    let identity: DeviceIdentity
    private(set) var version: String
    var faults: FaultState
    /// The action installed and not yet confirmed (confirmed after the "reboot").
    private var unconfirmed: Int64?
    private var sentAttributes = false
    private let authorization: String?
    private let tenant: String

    static let userAgent = "otamesh-devicesim-ddi/1"
    /// Resumptions of one download after cuts before the device gives up (SWUpdate's `-r`).
    static let maxResumes = 5

    init(identity: DeviceIdentity, settings: RunSettings) {
        self.identity = identity
        version = settings.version
        faults = FaultState(plan: settings.faults, seed: settings.seed, device: identity.index)
        authorization = settings.ddiAuthorization
        tenant = settings.ddiTenant
    }

    struct Failure: StagedFailure {
        let stage: String
        let reason: String
    }

    func request(_ method: String, _ endpoint: Endpoint, body: [UInt8]? = nil, range: Int? = nil) -> [UInt8] {
        var head = "\(method) \(endpoint.target) HTTP/1.1\r\nHost: \(endpoint.hostHeader)\r\nUser-Agent: \(Self.userAgent)\r\nAccept: application/json\r\n"
        if let authorization { head += "Authorization: \(authorization)\r\n" }
        if let range { head += "Range: bytes=\(range)-\r\n" }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        head += "Connection: close\r\n\r\n"
        return Array(head.utf8) + (body ?? [])
    }

    /// One request whose answer is small: status and body.
    func call(_ context: PollContext, _ method: String, _ endpoint: Endpoint, body: [UInt8]? = nil) async throws -> (Int, [UInt8]) {
        try await context.exchange(endpoint, request: request(method, endpoint, body: body)) { io, head in
            var bytes: [UInt8] = []
            var reader = BodyReader(imageOffset: 0, rate: nil)
            var none = FaultState(plan: FaultPlan(), seed: 0, device: 0)
            if head.contentLength ?? 0 > 0 { try await reader.read(&io, length: head.contentLength, faults: &none) { bytes += $0 } }
            return (head.status, bytes)
        }
    }

    static func feedback(_ action: Int64, execution: String, finished: String, details: [String]) -> [UInt8] {
        let object: [String: Any] = [
            "id": String(action), "time": "20261207T000000",
            "status": ["execution": execution, "result": ["finished": finished], "details": details],
        ]
        return Array((try? JSONSerialization.data(withJSONObject: object)) ?? Data())
    }

    mutating func update(_ context: PollContext) async throws -> PollOutcome {
        let base = context.endpoint(target: "/\(tenant)/controller/v1/\(identity.id)", tls: false)
        if let action = unconfirmed {
            let confirm = base.with(target: "\(base.target)/deploymentBase/\(action)/feedback")
            let body = Self.feedback(action, execution: "closed", finished: "success", details: ["Update confirmed after reboot"])
            let (status, _) = try await call(context, "POST", confirm, body: body)
            guard status == 200 else { throw Failure(stage: "confirm", reason: "confirmation answered \(status)") }
            unconfirmed = nil
        }
        let (status, body) = try await call(context, "GET", base)
        context.decided(status: status)
        guard status == 200 else { return .failed(stage: "check", reason: "poll answered \(status)", code: status) }
        let links = Self.links(body)
        if let config = links["configData"], !sentAttributes, let endpoint = Endpoint.parse(config) {
            let attributes: [String: Any] = [
                "mode": "merge", "data": ["hardware": context.settings.hardware], "status": ["execution": "closed", "result": ["finished": "success"]],
            ]
            let (put, _) = try await call(context, "PUT", endpoint, body: Array(try JSONSerialization.data(withJSONObject: attributes)))
            guard put == 200 else { throw Failure(stage: "check", reason: "configData answered \(put)") }
            sentAttributes = true
        }
        if let cancel = links["cancelAction"], let endpoint = Endpoint.parse(cancel) {
            let (got, answer) = try await call(context, "GET", endpoint)
            guard got == 200, let object = try? JSONSerialization.jsonObject(with: Data(answer)) as? [String: Any],
                let stop = ((object["cancelAction"] as? [String: Any])?["stopId"] as? String).flatMap({ Int64($0) })
            else { throw Failure(stage: "check", reason: "cancelAction answered \(got)") }
            let feedback = endpoint.with(target: endpoint.target.split(separator: "?").first.map(String.init)! + "/feedback")
            let (posted, _) = try await call(
                context, "POST", feedback, body: Self.feedback(stop, execution: "closed", finished: "success", details: ["cancellation acknowledged."]))
            guard posted == 200 else { throw Failure(stage: "check", reason: "cancel feedback answered \(posted)") }
            return .noUpdate(reason: "action \(stop) canceled")
        }
        guard let deployment = links["deploymentBase"], let endpoint = Endpoint.parse(deployment) else { return .noUpdate(reason: "no deployment") }
        return try await deploy(context, endpoint)
    }

    private mutating func deploy(_ context: PollContext, _ endpoint: Endpoint) async throws -> PollOutcome {
        let (got, body) = try await call(context, "GET", endpoint)
        guard got == 200, let plan = Deployment(json: body) else { throw Failure(stage: "check", reason: "deploymentBase answered \(got)") }
        let feedbackURL = endpoint.with(target: (endpoint.target.split(separator: "?").first.map(String.init) ?? endpoint.target) + "/feedback")
        func tell(_ execution: String, _ finished: String, _ detail: String) async throws {
            let (status, _) = try await call(
                context, "POST", feedbackURL, body: Self.feedback(plan.action, execution: execution, finished: finished, details: [detail]))
            guard status == 200 else { throw Failure(stage: "report", reason: "feedback answered \(status)") }
        }
        if plan.update == "skip" {
            try await tell("closed", "success", "Skipped Update.")
            return .noUpdate(reason: "action \(plan.action): update skipped (maintenance window \(plan.window ?? "none"))")
        }
        try await tell("proceeding", "none", "Installing Update Chunk Artifacts.")
        guard let url = Endpoint.parse(plan.url), plan.size > 0 else {
            throw Failure(stage: "download", reason: "artifact link '\(plan.url)' or size \(plan.size)")
        }
        faults.beginAttempt(imageLength: plan.size)
        var flash = FlashPartition(capacity: plan.size, corruptAt: faults.corruptionOffset(imageLength: plan.size))
        var resumes = 0
        while flash.bytes.count < plan.size {
            let offset = flash.bytes.count
            do {
                let problem: String? = try await context.exchange(url, request: request("GET", url, range: offset > 0 ? offset : nil)) { io, head in
                    let expected = plan.size - offset
                    if offset > 0 {
                        guard head.status == 206, head.header("content-range")?.hasPrefix("bytes \(offset)-") == true else {
                            return "resume from \(offset) answered \(head.status) \(head.header("content-range") ?? "")"
                        }
                    } else if head.status != 200 {
                        return "artifact answered \(head.status)"
                    }
                    guard head.contentLength == expected else { return "artifact body is \(head.contentLength ?? -1) bytes, expected \(expected)" }
                    var reader = BodyReader(imageOffset: offset, rate: faults.plan.rate)
                    defer { context.bytes += reader.delivered }
                    try await reader.read(&io, length: expected, faults: &faults) { chunk in flash.write(chunk, at: flash.bytes.count) }
                    return nil
                }
                if let problem {
                    try await tell("closed", "failure", problem)
                    return .failed(stage: "download", reason: problem, code: nil)
                }
            } catch TransferError.droppedByFault, TransferError.closedEarly, TransferError.timeout {
                resumes += 1
                guard resumes <= Self.maxResumes else { throw Failure(stage: "download", reason: "gave up after \(Self.maxResumes) resumptions") }
            }
        }
        let sha256 = SHA256.hash(data: flash.bytes).map { String(format: "%02x", $0) }.joined()
        let sha1 = Insecure.SHA1.hash(data: flash.bytes).map { String(format: "%02x", $0) }.joined()
        guard sha1 == plan.sha1, sha256 == plan.sha256 else {
            let reason = "artifact hashes differ: sha1 \(sha1) (expected \(plan.sha1)), sha256 \(sha256) (expected \(plan.sha256))"
            try await tell("closed", "failure", reason)
            return .failed(stage: "verify", reason: reason, code: nil)
        }
        // Installed: the device reboots into it and confirms on its next poll.
        let from = version
        version = plan.version
        unconfirmed = plan.action
        return .updated(from: from, to: version)
    }

    /// The `_links` hrefs of a controller answer.
    static func links(_ body: [UInt8]) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let links = object["_links"] as? [String: Any]
        else { return [:] }
        return links.compactMapValues { ($0 as? [String: Any])?["href"] as? String }
    }

    /// What a deploymentBase answer tells the device (one chunk, one artifact, as SWUpdate reads it).
    struct Deployment {
        var action: Int64
        var update: String
        var window: String?
        var version: String
        var url: String
        var size: Int
        var sha1: String
        var sha256: String

        init?(json: [UInt8]) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any],
                let action = (object["id"] as? String).flatMap({ Int64($0) }),
                let deployment = object["deployment"] as? [String: Any], let update = deployment["update"] as? String,
                let chunk = (deployment["chunks"] as? [[String: Any]])?.first, let version = chunk["version"] as? String,
                let artifact = (chunk["artifacts"] as? [[String: Any]])?.first, let size = artifact["size"] as? Int,
                let hashes = artifact["hashes"] as? [String: String], let sha1 = hashes["sha1"], let sha256 = hashes["sha256"],
                let links = artifact["_links"] as? [String: [String: String]],
                let url = links["download-http"]?["href"] ?? links["download"]?["href"]
            else { return nil }
            (self.action, self.update, self.window, self.version) = (action, update, deployment["maintenanceWindow"] as? String, version)
            (self.url, self.size, self.sha1, self.sha256) = (url, size, sha1, sha256)
        }
    }
}
