import Foundation
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout

/// What the DDI routes need besides the catalog and the rollouts' answer; the shell
/// (``DeviceAPI``) fills it from the configuration, the registry and the secret store.
public struct DDIContext: Sendable {
    public enum Authorization: Sendable, Equatable {
        case allowed
        case denied(String)
    }

    /// A DDI device as the registry knows it.
    public struct Device: Sendable, Equatable {
        public var hardware: String?
        /// The version a closed/success confirmed (`ddi` devices report none when they poll).
        public var version: String?
        /// It reported its attributes (configData) already.
        public var hasAttributes: Bool
        /// The action of its manual assignment that closed with a failure (not offered again
        /// until the assignment changes).
        public var failedAction: Int64?
        /// The download-ahead action it closed without installing (SWUpdate closes `update:
        /// skip` as a success): not linked again until the window opens.
        public var skippedAction: Int64?
        /// The action it canceled at the gateway's request (a halt): offered again as a new
        /// action on resume.
        public var canceledAction: Int64?
        /// The action whose cancelation it refused: it goes on (deployed, not asked again).
        public var refusedCancel: Int64?
        public init(
            hardware: String? = nil, version: String? = nil, hasAttributes: Bool = false, failedAction: Int64? = nil, skippedAction: Int64? = nil,
            canceledAction: Int64? = nil, refusedCancel: Int64? = nil
        ) {
            (self.hardware, self.version, self.hasAttributes, self.failedAction) = (hardware, version, hasAttributes, failedAction)
            (self.skippedAction, self.canceledAction, self.refusedCancel) = (skippedAction, canceledAction, refusedCancel)
        }
    }

    public var settings: DDISettings
    /// Whether the request's credential may act as this controller (the shell enrolls a new
    /// device's first TargetToken when `ddi.authentication: enroll`).
    public var authorize: @Sendable (_ controller: String, _ credential: DDI.Credential) -> Authorization
    public var device: @Sendable (_ id: String) -> Device?
    /// The device listeners' ports (known once they are bound), for absolute download links.
    public var ports: @Sendable () -> (http: Int?, tls: Int?)

    public init(
        settings: DDISettings, authorize: @escaping @Sendable (String, DDI.Credential) -> Authorization,
        device: @escaping @Sendable (String) -> Device?,
        ports: @escaping @Sendable () -> (http: Int?, tls: Int?) = { (nil, nil) }
    ) {
        self.settings = settings
        self.authorize = authorize
        self.device = device
        self.ports = ports
    }
}

/// A DDI device's feedback, for the shell to apply: to the rollout that started the action, or
/// (a manual assignment) to the registry.
public struct DDIFeedbackEvent: Sendable, Equatable {
    /// What the report is about.
    public enum Kind: Sendable, Equatable {
        /// An attempt the device installs: the rollout (or the registry) hears it.
        case attempt
        /// An action offered to download ahead of the window (`update: skip`): no attempt runs,
        /// so nothing counts; a close is remembered so the action is not linked again until the
        /// window opens.
        case downloadAhead
        /// The device's answer to a `cancelAction` (or, polling after it, its standing answer).
        case cancelation
        /// The device refused a `cancelAction` (rejected, or closed with a failure): it goes on
        /// with the action, which finishes and counts.
        case cancelRefused
    }

    public var kind: Kind = .attempt
    public var device: String
    public var action: Int64
    public var rollout: String?
    /// The target's version (a confirmed success is recorded as it).
    public var version: String?
    /// The target's SHA-256 (recorded as the version, `sha256:HEX`, when it has none).
    public var sha256: String
    public var report: RolloutNode.DeviceReport

    /// The prefix of a version recorded as a digest.
    public static let digestVersion = "sha256:"

    /// What the registry records as the device's version after a confirmed success.
    public var installedVersion: String { version ?? Self.digestVersion + sha256 }
}

extension DeviceRoutes {
    /// One DDI request (`/{tenant}/controller/v1/{controllerId}…`).
    static func ddi(_ request: DeviceRequest, path: DDI.Path, ddi: DDIContext, context: Context) throws(NeedRolloutAnswer) -> Outcome {
        guard path.tenant.lowercased() == ddi.settings.tenant.lowercased() else { return plain(.notFound("tenant \(path.tenant)")) }
        let controller = path.controllerID
        if case .denied(let why) = ddi.authorize(controller, DDI.credential(request.header("authorization"))) {
            return plain(.text(401, "\(why)\n", extra: [("WWW-Authenticate", "TargetToken")]))
        }
        let id = DeviceRegistry.normalizedID(controller)
        let known = ddi.device(id) ?? DDIContext.Device()
        let resolved = try ddiAction(id: id, device: known, address: request.clientAddress, ddi: ddi, context: context)
        func sighting(_ answer: String) -> DeviceSighting {
            DeviceSighting(id: id, family: .ddi, hardware: nil, version: nil, address: request.clientAddress, answer: answer)
        }
        let base = "\(origin(request))/\(path.tenant)/controller/v1/\(controller)"
        func event(_ action: DDIAction, _ kind: DDIFeedbackEvent.Kind, _ report: RolloutNode.DeviceReport) -> DDIFeedbackEvent {
            DDIFeedbackEvent(
                kind: kind, device: id, action: action.id, rollout: action.rollout, version: action.target.version, sha256: action.blob.sha256,
                report: report)
        }
        switch (request.method, path.resource) {
        case ("GET", .base):
            var deployment: String?
            var cancel: String?
            var standing: DDIFeedbackEvent?
            var answer = resolved.answer
            if let action = resolved.action {
                switch action.mode {
                case .install:
                    deployment = "\(base)/deploymentBase/\(action.id)?c=\(action.blob.sha256.prefix(12))"
                case .downloadAhead where known.skippedAction == action.id:
                    answer += "; the device closed it without installing: linked again when the window opens"
                case .downloadAhead:
                    deployment = "\(base)/deploymentBase/\(action.id)?c=\(action.blob.sha256.prefix(12))"
                case .cancel where known.canceledAction == action.id:
                    // Canceled already: its rollout hears it again (an abort ends the attempt).
                    standing = event(action, .cancelation, .canceled)
                    answer += "; canceled by the device"
                case .cancel:
                    cancel = "\(base)/cancelAction/\(action.id)"
                }
            }
            let body = DDI.controllerBase(
                sleep: deployment == nil && cancel == nil ? ddi.settings.pollInterval : ddi.settings.activePollInterval,
                // hawkBit's `?c=` (clients such as rauc-hawkbit require it when they parse the href).
                deploymentBase: deployment,
                configData: known.hasAttributes ? nil : "\(base)/configData", cancelAction: cancel)
            return .response(ddiJSON(request, body), sighting: sighting(answer), ddiFeedback: standing)
        case ("GET", .deploymentBase(let actionID)):
            guard let action = resolved.action, action.id == actionID, action.mode != .cancel else {
                return .response(.text(404, "no open action \(actionID) for \(controller)\n"), sighting: sighting(resolved.answer))
            }
            guard let digests = context.digests(action.blob.sha256), let sha1 = digests.sha1 else { return .needDigests(action.blob.sha256) }
            let file =
                "/v1/targets/" + action.target.path.split(separator: "/").map { PercentEncoding.encode(String($0)) }.joined(separator: "/")
                + "?device=" + PercentEncoding.encode(id)
            // `download` (which clients prefer) keeps the scheme and authority the device used: a
            // device polling over HTTP may not trust the site CA, and a proxy or NAT in between
            // keeps working. `download-http` is plain HTTP, on this gateway's port when the
            // device came over HTTPS.
            let asked = origin(request) + file
            let http = request.isTLS ? ddi.ports().http.map { "http://\(hostName(request)):\($0)\(file)" } ?? asked : asked
            let artifact = DDI.Artifact(
                filename: action.target.fileName, size: action.blob.size, sha1: sha1, md5: digests.md5, sha256: action.blob.sha256,
                download: asked, downloadHTTP: http)
            // Outside the window: download now, install when it opens (hawkBit's maintenance window).
            let ahead = action.mode == .downloadAhead
            let body = DDI.deploymentBase(
                actionID: action.id, download: .forced, update: ahead ? .skip : .forced, maintenanceWindowAvailable: ahead ? false : nil, part: "os",
                version: action.target.version ?? String(action.blob.sha256.prefix(12)), name: action.target.path, artifacts: [artifact])
            let what = ahead ? "download ahead (installs when the window opens)" : "deployment"
            return .response(ddiJSON(request, body), sighting: sighting("\(what) \(action.id): \(action.target.path)"))
        case ("POST", .deploymentFeedback(let actionID)):
            let feedback: DDI.Feedback
            do throws(DDIError) { feedback = try DDI.Feedback(json: request.body) } catch {
                return .response(.text(400, "\(error.reason)\n"), sighting: nil)
            }
            guard let action = resolved.action, action.id == actionID else {
                // A late or repeated report of an action already closed: acknowledged (a client
                // retries a refused confirmation for ever), changes nothing.
                return .response(.empty(200), sighting: sighting("feedback for action \(actionID), which is not open: ignored"))
            }
            // A canceled action the device was already working on finishes and counts.
            let kind: DDIFeedbackEvent.Kind = action.mode == .downloadAhead ? .downloadAhead : .attempt
            var said = feedbackAnswer(feedback, action: action.id)
            if kind == .downloadAhead { said += " (downloaded ahead of the window: not counted)" }
            return .response(.empty(200), sighting: sighting(said), ddiFeedback: event(action, kind, report(feedback)))
        case ("GET", .cancelAction(let actionID)):
            guard let action = resolved.action, action.id == actionID, action.mode == .cancel else {
                return .response(.text(404, "no cancelation \(actionID) for \(controller)\n"), sighting: sighting(resolved.answer))
            }
            return .response(ddiJSON(request, DDI.cancelAction(actionID: action.id)), sighting: sighting("cancel action \(action.id): \(resolved.answer)"))
        case ("POST", .cancelFeedback(let actionID)):
            let feedback: DDI.Feedback
            do throws(DDIError) { feedback = try DDI.Feedback(json: request.body) } catch {
                return .response(.text(400, "\(error.reason)\n"), sighting: nil)
            }
            guard let action = resolved.action, action.id == actionID, action.mode == .cancel else {
                return .response(.empty(200), sighting: sighting("cancel feedback for action \(actionID), which is not being canceled: ignored"))
            }
            // closed/success (or canceled): it stopped; rejected or a failure: it goes on, and its
            // attempt finishes and counts.
            let stopped = feedback.finished != .failure && (feedback.execution == .closed || feedback.execution == .canceled)
            guard stopped else {
                let said = "cancel action \(action.id): \(feedback.execution.rawValue) \(feedback.finished.rawValue): the device goes on"
                return .response(.empty(200), sighting: sighting(said), ddiFeedback: event(action, .cancelRefused, .progress(.offered)))
            }
            return .response(.empty(200), sighting: sighting("cancel action \(action.id): canceled"), ddiFeedback: event(action, .cancelation, .canceled))
        case ("PUT", .configData):
            let config: DDI.ConfigData
            do throws(DDIError) { config = try DDI.ConfigData(json: request.body) } catch {
                return .response(.text(400, "\(error.reason)\n"), sighting: nil)
            }
            var seen = sighting("reported \(config.data.count) attributes")
            seen.options = config.mode == .remove ? [:] : config.data
            seen.hardware = config.data["hardware"]
            seen.variant = config.data["variant"]
            return .response(.empty(200), sighting: seen)
        default:
            return plain(.text(405, "method \(request.method) not allowed here\n"))
        }
    }

    /// The action open for a DDI device now: its rollout's (the rollouts decide first), else its
    /// manual assignment's while it does not run it; and the answer to record.
    struct DDIAction {
        enum Mode { case install, downloadAhead, cancel }
        var id: Int64
        var target: ServedTarget
        var blob: ServedBlob
        var rollout: String?
        var mode = Mode.install
    }

    static func ddiAction(
        id: String, device: DDIContext.Device, address: String, ddi: DDIContext, context: Context
    ) throws(NeedRolloutAnswer) -> (action: DDIAction?, answer: String) {
        // No version in the query: a DDI device reports none when it polls; its feedback decides.
        let query = DeviceQuery(id: id, family: .ddi, hardware: device.hardware, version: nil, address: address)
        var answer = RolloutAnswer.none
        if context.rolloutsActive {
            guard let asked = context.rolloutAnswer, asked.query.asks(query) else { throw NeedRolloutAnswer(query: query) }
            answer = asked.answer
        }
        func rolloutAction(_ path: String, _ rollout: String, _ asked: DDIAction.Mode) -> (DDIAction?, String)? {
            guard let (target, blob) = context.catalog.blob(forTarget: path) else { return nil }
            var action = DDI.actionID(rollout, target.sha256, id)
            // A device that refused the cancelation goes on with the action.
            let mode = asked == .cancel && device.refusedCancel == action ? .install : asked
            // Canceled under a halt, offered again on resume: a new action (clients close ids).
            if mode != .cancel, device.canceledAction == action { action = DDI.actionID(rollout, target.sha256, id, "after \(action)") }
            return (DDIAction(id: action, target: target, blob: blob, rollout: rollout, mode: mode), "action \(action) for \(path) (rollout \(rollout))")
        }
        switch answer {
        case .offer(let path, let rollout):
            return rolloutAction(path, rollout, .install) ?? (nil, "rollout \(rollout): \(path) is not in the cache")
        case .prefetch(let path, let rollout, let why):
            guard let (action, said) = rolloutAction(path, rollout, .downloadAhead) else { return (nil, why) }
            return (action, "\(why): \(said) to download ahead")
        case .cancel(let path, let rollout, let why):
            guard let (action, said) = rolloutAction(path, rollout, .cancel) else { return (nil, why) }
            return (action, "\(why): \(said) canceled")
        case .hold(let why):
            return (nil, why)
        case .none:
            guard let path = context.assignment(id) else { return (nil, "no assignment") }
            // A versionless target's success is recorded as its digest (`sha256:HEX`).
            let installed = device.version.flatMap {
                $0.hasPrefix(DDIFeedbackEvent.digestVersion) ? String($0.dropFirst(DDIFeedbackEvent.digestVersion.count)) : nil
            }
            let running = RunningDigests(sha256: installed)
            switch decideAssigned(path: path, hardware: device.hardware, version: installed == nil ? device.version : nil, running: running, context: context) {
            case .offer(let target, let blob):
                let action = DDI.actionID("assigned", target.sha256, id)
                if device.failedAction == action { return (nil, "action \(action) for \(path) failed; not offered again (reassign to retry)") }
                return (DDIAction(id: action, target: target, blob: blob, rollout: nil), "action for \(path)")
            case .upToDate(let why): return (nil, "up to date (\(why))")
            case .nothing(let why): return (nil, why)
            }
        }
    }

    static func report(_ feedback: DDI.Feedback) -> RolloutNode.DeviceReport {
        let said = feedback.details.joined(separator: "; ")
        switch (feedback.execution, feedback.finished) {
        case (.closed, .failure): return .failed(said.isEmpty ? "closed with failure" : said)
        case (.closed, _): return .succeeded
        case (.canceled, _): return .failed("canceled by the device" + (said.isEmpty ? "" : ": \(said)"))
        case (.rejected, _): return .failed("rejected by the device" + (said.isEmpty ? "" : ": \(said)"))
        case (.downloaded, _): return .progress(.installing)
        case (.proceeding, _):
            // SWUpdate reports the chunks installed (cnt of of) once it streamed the artifact in.
            if let progress = feedback.progress, let of = progress.of, of > 0, progress.count >= of { return .progress(.installing) }
            return .progress(.downloading)
        default: return .progress(.downloading)
        }
    }

    static func feedbackAnswer(_ feedback: DDI.Feedback, action: Int64) -> String {
        let last = feedback.details.last.map { ": \(String($0.prefix(120)))" } ?? ""
        return "action \(action): \(feedback.execution.rawValue) \(feedback.finished.rawValue)\(last)"
    }

    /// JSON with an ETag; 304 when the client already has it.
    static func ddiJSON(_ request: DeviceRequest, _ body: [UInt8]) -> DeviceResponse {
        let etag = "\"\(String(DDI.actionID(String(decoding: body, as: UTF8.self)), radix: 16))\""
        if let match = request.header("if-none-match"), match == etag { return DeviceResponse(status: 304, headers: [("ETag", etag)]) }
        return DeviceResponse(
            // application/json, which every client accepts (aiohttp's json() refuses hal+json).
            status: 200, headers: [("Content-Type", "application/json;charset=UTF-8"), ("ETag", etag), ("Cache-Control", "no-store")],
            body: [.bytes(body)])
    }

    /// The request's host without its port (a checked Host header), for links on other ports.
    static func hostName(_ request: DeviceRequest) -> String {
        guard let host = request.header("host"), !host.isEmpty, host.count <= 255,
            host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:[]".contains($0)) })
        else { return "localhost" }
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") { return String(host[...close]) }
        return String(host.split(separator: ":").first ?? Substring(host))
    }
}
