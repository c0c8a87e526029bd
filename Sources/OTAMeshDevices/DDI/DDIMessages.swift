import Foundation

/// Eclipse hawkBit's Direct Device Integration API (DDI), the subset SWUpdate's suricatta and
/// rauc-hawkbit-updater use (docs/devices.md, "Linux devices (hawkBit DDI)"). Pure: paths,
/// the JSON the gateway sends and the JSON devices send, each bounded and checked.
public enum DDI {
    /// Largest request body taken (feedback with 48 log lines is ~5 KB; configData is small).
    public static let maxBody = 64 * 1024
    /// At most this many `details` lines and characters per line are kept from a feedback.
    public static let maxDetails = 64
    public static let maxDetailLength = 512
    /// At most this many configData attributes, and characters per key and value.
    public static let maxAttributes = 64
    public static let maxAttributeLength = 256

    public enum Mode: String, Sendable, Equatable {
        case skip, attempt, forced
    }

    /// `config.polling.sleep`: `HH:MM:SS` (SWUpdate parses it with `%H:%M:%S`, so at most
    /// 23:59:59; 00:00:00 means its own default, so at least one second).
    public static func sleep(seconds: Int) -> String {
        let clamped = min(max(seconds, 1), 23 * 3600 + 59 * 60 + 59)
        return String(format: "%02d:%02d:%02d", clamped / 3600, clamped / 60 % 60, clamped % 60)
    }

    /// The controller's answer to a poll: the interval and the links that apply now.
    public static func controllerBase(sleep seconds: Int, deploymentBase: String?, configData: String?, cancelAction: String?) -> [UInt8] {
        var links: [String: Any] = [:]
        if let deploymentBase { links["deploymentBase"] = ["href": deploymentBase] }
        if let configData { links["configData"] = ["href": configData] }
        if let cancelAction { links["cancelAction"] = ["href": cancelAction] }
        return json(["config": ["polling": ["sleep": sleep(seconds: seconds)]], "_links": links])
    }

    /// One artifact of a deployment: a verified target.
    public struct Artifact: Sendable, Equatable {
        public var filename: String
        public var size: Int64
        public var sha1: String
        public var md5: String
        public var sha256: String
        /// `download` (HTTPS where the gateway has it) and `download-http`.
        public var download: String
        public var downloadHTTP: String

        public init(filename: String, size: Int64, sha1: String, md5: String, sha256: String, download: String, downloadHTTP: String) {
            (self.filename, self.size, self.sha1, self.md5, self.sha256) = (filename, size, sha1, md5, sha256)
            (self.download, self.downloadHTTP) = (download, downloadHTTP)
        }
    }

    /// `GET …/deploymentBase/{actionId}`: one chunk (the target) with its artifact.
    public static func deploymentBase(
        actionID: Int64, download: Mode, update: Mode, maintenanceWindowAvailable: Bool?, part: String, version: String, name: String,
        artifacts: [Artifact]
    ) -> [UInt8] {
        var deployment: [String: Any] = [
            "download": download.rawValue, "update": update.rawValue,
            "chunks": [
                [
                    "part": part, "version": version, "name": name,
                    "artifacts": artifacts.map { artifact in
                        [
                            "filename": artifact.filename, "size": artifact.size,
                            "hashes": ["sha1": artifact.sha1, "md5": artifact.md5, "sha256": artifact.sha256],
                            "_links": ["download": ["href": artifact.download], "download-http": ["href": artifact.downloadHTTP]],
                        ] as [String: Any]
                    },
                ] as [String: Any]
            ],
        ]
        if let available = maintenanceWindowAvailable { deployment["maintenanceWindow"] = available ? "available" : "unavailable" }
        return json(["id": String(actionID), "deployment": deployment])
    }

    /// `GET …/cancelAction/{actionId}`: stop the action (hawkBit's `stopId` is the action's id).
    public static func cancelAction(actionID: Int64) -> [UInt8] {
        json(["id": String(actionID), "cancelAction": ["stopId": String(actionID)]])
    }

    static func json(_ object: [String: Any]) -> [UInt8] {
        // Every value above is a string, number, array or dictionary: serialization cannot fail.
        [UInt8]((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8))
    }

    /// A stable action id for an attempt: the same on every gateway (a device may move), below
    /// 2^31 (SWUpdate reads it with `json_object_get_int`), never 0.
    public static func actionID(_ parts: String...) -> Int64 {
        // FNV-1a, 64 bits, folded to 31.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in parts.joined(separator: "\u{1f}").utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let folded = (hash ^ (hash >> 31) ^ (hash >> 62)) & 0x7fff_ffff
        return folded == 0 ? 1 : Int64(folded)
    }
}

/// A DDI request body the gateway refuses, with why.
public struct DDIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension DDI {
    /// `POST …/deploymentBase/{actionId}/feedback` (and `…/cancelAction/{id}/feedback`). Accepts
    /// every shape clients send: `id` as a number or string (or absent), `time` (any string) or
    /// `timestamp` (milliseconds), `progress`, `code` and `details` optional.
    public struct Feedback: Sendable, Equatable {
        public enum Execution: String, Sendable, Equatable, CaseIterable {
            case closed, proceeding, canceled, scheduled, rejected, resumed, downloaded, download
        }
        public enum Finished: String, Sendable, Equatable, CaseIterable {
            case success, failure, none
        }

        public var actionID: Int64?
        public var execution: Execution
        public var finished: Finished
        public var progress: (count: Int, of: Int?)?
        public var code: Int?
        /// Each line bounded, control characters replaced: stored as data, shown escaped.
        public var details: [String]

        public static func == (a: Feedback, b: Feedback) -> Bool {
            a.actionID == b.actionID && a.execution == b.execution && a.finished == b.finished && a.progress?.count == b.progress?.count
                && a.progress?.of == b.progress?.of && a.code == b.code && a.details == b.details
        }

        public init(execution: Execution, finished: Finished, actionID: Int64? = nil, details: [String] = []) {
            self.execution = execution
            self.finished = finished
            self.actionID = actionID
            self.details = details
        }

        public init(json bytes: [UInt8]) throws(DDIError) {
            let object = try DDI.object(bytes)
            actionID = DDI.integer(object["id"])
            guard let status = object["status"] as? [String: Any] else { throw DDIError("feedback: missing 'status'") }
            guard let executionText = status["execution"] as? String, let execution = Execution(rawValue: executionText) else {
                throw DDIError(
                    "feedback: status.execution must be one of \(Execution.allCases.map(\.rawValue).joined(separator: ", ")), got \(DDI.shown(status["execution"]))"
                )
            }
            self.execution = execution
            guard let result = status["result"] as? [String: Any], let finishedText = result["finished"] as? String,
                let finished = Finished(rawValue: finishedText)
            else {
                throw DDIError("feedback: status.result.finished must be success, failure or none")
            }
            self.finished = finished
            if let progress = result["progress"] as? [String: Any], let count = DDI.integer(progress["cnt"]) {
                self.progress = (Int(clamping: count), DDI.integer(progress["of"]).map { Int(clamping: $0) })
            }
            code = DDI.integer(status["code"]).map { Int(clamping: $0) }
            details = ((status["details"] as? [Any]) ?? []).prefix(DDI.maxDetails).compactMap { $0 as? String }.map { DDI.bounded($0, DDI.maxDetailLength) }
        }
    }

    /// `PUT …/configData`: attributes the device reports (`mode` merge by default).
    public struct ConfigData: Sendable, Equatable {
        public enum Mode: String, Sendable, Equatable {
            case merge, replace, remove
        }
        public var mode: Mode
        public var data: [String: String]

        public init(mode: Mode = .merge, data: [String: String]) {
            self.mode = mode
            self.data = data
        }

        public init(json bytes: [UInt8]) throws(DDIError) {
            let object = try DDI.object(bytes)
            if let text = object["mode"] as? String {
                guard let mode = Mode(rawValue: text) else { throw DDIError("configData: mode must be merge, replace or remove, got \(DDI.shown(text))") }
                self.mode = mode
            } else {
                mode = .merge
            }
            guard let data = object["data"] as? [String: Any] else { throw DDIError("configData: missing 'data' (a map of strings)") }
            guard data.count <= DDI.maxAttributes else { throw DDIError("configData: \(data.count) attributes, at most \(DDI.maxAttributes)") }
            var attributes: [String: String] = [:]
            for (key, value) in data {
                guard !key.isEmpty, key.count <= DDI.maxAttributeLength else { throw DDIError("configData: an attribute name is empty or too long") }
                let text: String
                switch value {
                case let string as String: text = string
                case let number as NSNumber: text = number.stringValue
                default: throw DDIError("configData: attribute \(DDI.shown(key)) is not a string")
                }
                attributes[DDI.bounded(key, DDI.maxAttributeLength)] = DDI.bounded(text, DDI.maxAttributeLength)
            }
            self.data = attributes
        }
    }

    static func object(_ bytes: [UInt8]) throws(DDIError) -> [String: Any] {
        guard bytes.count <= maxBody else { throw DDIError("body of \(bytes.count) bytes, at most \(maxBody)") }
        guard let value = try? JSONSerialization.jsonObject(with: Data(bytes), options: []), let object = value as? [String: Any] else {
            throw DDIError("body is not a JSON object")
        }
        return object
    }

    /// A number, or a string of digits (`"7"`), as clients send ids and counters.
    static func integer(_ value: Any?) -> Int64? {
        switch value {
        case let number as NSNumber:
            let value = number.doubleValue.rounded(.towardZero)
            return abs(value) < 9e15 ? Int64(value) : nil
        case let string as String where string.count <= 19: return Int64(string)
        default: return nil
        }
    }

    /// Control characters replaced, at most `limit` characters.
    static func bounded(_ text: String, _ limit: Int) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(limit).map { $0.properties.generalCategory == .control ? " " : $0 }))
    }

    /// A value shown in an error: quoted, bounded, control characters replaced.
    static func shown(_ value: Any?) -> String {
        guard let value else { return "nothing" }
        return "'\(bounded(String(describing: value), 40))'"
    }
}

extension DDI {
    /// What a DDI path asks for.
    public enum Resource: Sendable, Equatable {
        case base
        case configData
        case deploymentBase(Int64)
        case deploymentFeedback(Int64)
        case cancelAction(Int64)
        case cancelFeedback(Int64)
    }

    public struct Path: Sendable, Equatable {
        public var tenant: String
        public var controllerID: String
        public var resource: Resource
        public init(tenant: String, controllerID: String, resource: Resource) {
            (self.tenant, self.controllerID, self.resource) = (tenant, controllerID, resource)
        }
    }

    /// `/{tenant}/controller/v1/{controllerId}[/configData | /deploymentBase/{id}[/feedback] |
    /// /cancelAction/{id}[/feedback]]`, nil for anything else (the path percent-decoded).
    public static func path(_ path: String) -> Path? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 5, parts.count <= 8, parts[0].isEmpty, parts[2] == "controller", parts[3] == "v1" else { return nil }
        let tenant = String(parts[1])
        let controller = String(parts[4])
        guard isName(tenant), isName(controller) else { return nil }
        func action(_ text: Substring) -> Int64? {
            guard text.count <= 10, let value = Int64(text), value > 0, value <= Int64(Int32.max) else { return nil }
            return value
        }
        let resource: Resource
        switch parts.count {
        case 5: resource = .base
        case 6 where parts[5] == "configData": resource = .configData
        case 7 where parts[5] == "deploymentBase": guard let id = action(parts[6]) else { return nil }; resource = .deploymentBase(id)
        case 7 where parts[5] == "cancelAction": guard let id = action(parts[6]) else { return nil }; resource = .cancelAction(id)
        case 8 where parts[5] == "deploymentBase" && parts[7] == "feedback":
            guard let id = action(parts[6]) else { return nil }
            resource = .deploymentFeedback(id)
        case 8 where parts[5] == "cancelAction" && parts[7] == "feedback":
            guard let id = action(parts[6]) else { return nil }
            resource = .cancelFeedback(id)
        default: return nil
        }
        return Path(tenant: tenant, controllerID: controller, resource: resource)
    }

    /// Tenants and controller ids: 1…64 of letters, digits, `.`, `_`, `-`, `:`.
    public static func isName(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count)
            && text.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7a) || byte == 0x2e || byte == 0x5f || byte == 0x2d
                    || byte == 0x3a
            }
    }

    /// The credential of `Authorization: TargetToken T` / `GatewayToken T`.
    public enum Credential: Sendable, Equatable {
        case targetToken(String)
        case gatewayToken(String)
        case none
    }

    public static func credential(_ header: String?) -> Credential {
        guard let header else { return .none }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2 else { return .none }
        let token = String(parts[1].trimmingCharacters(in: .whitespaces).prefix(256))
        switch parts[0].lowercased() {
        case "targettoken": return .targetToken(token)
        case "gatewaytoken": return .gatewayToken(token)
        default: return .none
        }
    }
}
