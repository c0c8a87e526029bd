import Crypto
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshDevices

/// How the gateway answers hawkBit DDI devices: the settings and what authenticates them.
public struct DDIAccess: Sendable {
    public var settings: DDISettings
    /// TargetTokens (`otamesh device add --family ddi`, or enrolled on first contact).
    public var secrets: DeviceSecretStore
    /// The site's GatewayToken (nil: none accepted).
    public var gatewayToken: String?

    public init(settings: DDISettings, secrets: DeviceSecretStore, gatewayToken: String? = nil) {
        self.settings = settings
        self.secrets = secrets
        self.gatewayToken = gatewayToken
    }

    /// Whether `credential` may act as controller `id`.
    func authorize(_ id: String, _ credential: DDI.Credential) -> DDIContext.Authorization {
        if settings.authentication == .anonymous { return .allowed }
        switch credential {
        case .gatewayToken(let token):
            guard let gatewayToken, Self.equal(token, gatewayToken) else { return .denied("GatewayToken not accepted") }
            return .allowed
        case .targetToken(let token):
            guard !token.isEmpty else { return .denied("empty TargetToken") }
            let stored: String?
            do { stored = try secrets.targetToken(for: id) } catch { return .denied("the gateway cannot read its device secrets") }
            if let stored { return Self.equal(token, stored) ? .allowed : .denied("TargetToken not accepted for \(id)") }
            guard settings.authentication == .enroll else {
                return .denied("unknown DDI device \(id): otamesh device add --family ddi --id \(id) issues its TargetToken")
            }
            do { try secrets.setTargetToken(id, token) } catch { return .denied("the gateway cannot record the TargetToken") }
            return .allowed
        case .none:
            return .denied("Authorization: TargetToken or GatewayToken required")
        }
    }

    /// Constant-time comparison (of SHA-256 digests, so lengths leak nothing either).
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(SHA256.hash(data: Array(a.utf8)))
        let y = Array(SHA256.hash(data: Array(b.utf8)))
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

extension DeviceAPI {
    /// Download-ahead actions a device closed without installing, actions it canceled and those
    /// whose cancelation it refused, by device (kept in memory: after a restart a device is
    /// asked once more).
    struct DDIActionMemory: Sendable {
        var skipped: [String: Int64] = [:]
        var canceled: [String: Int64] = [:]
        var refused: [String: Int64] = [:]
    }

    /// The route context's DDI part, over the registry and the actions' memory.
    static func ddiContext(
        _ access: DDIAccess, registry: DeviceRegistry, actions: NIOLockedValueBox<DDIActionMemory>, ports: NIOLockedValueBox<(http: Int?, tls: Int?)>
    ) -> DDIContext {
        DDIContext(
            settings: access.settings, authorize: { access.authorize(DeviceRegistry.normalizedID($0), $1) },
            device: { id in
                guard let record = registry.device(id) else { return nil }
                let (skipped, canceled, refused) = actions.withLockedValue { ($0.skipped[id], $0.canceled[id], $0.refused[id]) }
                return DDIContext.Device(
                    hardware: record.hardware, version: record.version, hasAttributes: record.announced != nil, failedAction: record.failedAction,
                    skippedAction: skipped, canceledAction: canceled, refusedCancel: refused)
            },
            ports: { ports.withLockedValue { $0 } })
    }

    /// The device listeners' ports, once bound (DDI's download links name them).
    public func setDevicePorts(http: Int?, tls: Int?) {
        devicePorts.withLockedValue { $0 = (http, tls) }
    }

    /// Carries out a DDI device's feedback: to its rollout, or (a manual assignment) to the
    /// registry. A confirmed success is recorded as the device's version either way.
    func apply(_ event: DDIFeedbackEvent, engine: (any DeviceRollouts)?) {
        switch event.kind {
        case .downloadAhead:
            // No attempt runs; a close (SWUpdate closes `update: skip` as a success without
            // installing) only stops the link until the window opens.
            if case .progress = event.report { return }
            ddiActions.withLockedValue { $0.skipped[event.device] = event.action }
            return
        case .cancelation:
            ddiActions.withLockedValue { $0.canceled[event.device] = event.action }
            if let rollout = event.rollout { engine?.reported(device: event.device, rollout: rollout, .canceled) }
            return
        case .cancelRefused:
            ddiActions.withLockedValue { $0.refused[event.device] = event.action }
            return
        case .attempt:
            break
        }
        if let rollout = event.rollout { engine?.reported(device: event.device, rollout: rollout, event.report) }
        switch event.report {
        case .succeeded:
            registry.confirmed(
                event.device, version: event.installedVersion, variant: nil, answer: "action \(event.action): installed", at: clock.now().seconds)
            if event.rollout == nil { registry.noteFailedAction(event.device, nil) }
        case .failed:
            if event.rollout == nil { registry.noteFailedAction(event.device, event.action) }
        case .progress, .canceled:
            break
        }
    }
}
