import OTAMeshRollout

extension ArduinoOTAPush {
    // MARK: after the transfer

    mutating func report(_ phase: DeviceOutcome.Phase) -> [Action] {
        reported.insert(phase.rawValue).inserted ? [.progress(phase)] : []
    }

    /// The device took the image and restarts: close the link, poll its version.
    mutating func took(now: Int64) -> [Action] {
        stage = .confirming
        // A filesystem image is confirmed by the device reporting its config-id (the shell reads
        // `config` from the version endpoint then); firmware by its version.
        confirmation = RebootConfirmation(expected: image.configID ?? image.version ?? "?", before: image.configID == nil ? target.version : nil, since: now)
        return [.closeLink] + report(.downloading) + report(.installing) + [.wait(until: now + timing.pollInterval)]
    }

    mutating func confirm(_ version: String, variant: String?, now: Int64) -> [Action] {
        let verdict = confirmation?.reported(version, now: now, timing: timing)
        if case .confirmed = verdict, image.configID == nil, let variant, let deviceChip = ArduinoOTAWire.chip(ofVariant: variant),
            let imageChip = facts?.chip ?? image.variant.flatMap(ArduinoOTAWire.chip(ofVariant:)), deviceChip != imageChip
        {
            return fail(.rebootedIntoOld, "device came back running \(version) as variant \(variant), not compatible with the image (\(imageChip))")
        }
        return judge(verdict, now: now)
    }

    mutating func judge(_ verdict: RebootConfirmation.Verdict?, now: Int64) -> [Action] {
        switch verdict {
        case .confirmed(let version)?:
            stage = .done
            return [.succeeded(version: version)]
        case .failed(let failure)?:
            return fail(failure.kind, failure.reason)
        case .pollAgain?, nil:
            return [.wait(until: now + timing.pollInterval)]
        }
    }

    mutating func fail(_ kind: PushFailure.Kind, _ reason: String) -> [Action] {
        stage = .done
        return [.closeLink, .failed(PushFailure(kind, reason))]
    }
}
