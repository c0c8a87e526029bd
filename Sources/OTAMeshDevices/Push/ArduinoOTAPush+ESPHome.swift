import OTAMeshRollout

/// ESPHome's dialect of the OTA handshake (magic, features, auth, size, MD5), step by step.
extension ArduinoOTAPush {
    // MARK: esphome

    mutating func handshake(now: Int64) -> [Action] {
        var actions: [Action] = []
        while case .handshaking(let step) = stage, !buffer.isEmpty {
            if step != .nonce, let failure = pendingError() { return actions + fail(failure.kind, failure.reason) }
            guard buffer.count >= step.length else { break }
            let answer = Array(buffer.prefix(step.length))
            buffer.removeFirst(step.length)
            actions += answered(step, answer, now: now)
        }
        return Self.lastWaitOnly(actions)
    }

    /// Several answers in one read: only the last step's wait counts.
    static func lastWaitOnly(_ actions: [Action]) -> [Action] {
        guard let last = actions.lastIndex(where: { if case .wait = $0 { true } else { false } }) else { return actions }
        return actions.enumerated().filter { index, action in
            if case .wait = action { return index == last }
            return true
        }.map(\.element)
    }

    mutating func answered(_ step: ESPHomeStep, _ answer: [UInt8], now: Int64) -> [Action] {
        typealias Code = ArduinoOTAWire.ESPHomeCode
        func unexpected() -> [Action] {
            fail(.refused, "unexpected answer 0x\(String(answer[0], radix: 16, uppercase: true)) to \(step.name) (not an ESPHome native OTA device?)")
        }
        switch step {
        case .version:
            guard answer[0] == Code.ok else { return unexpected() }
            guard answer[1] == ArduinoOTAWire.esphomeVersion else {
                return fail(.refused, "device speaks ESPHome OTA version \(answer[1]); otamesh speaks version 1")
            }
            stage = .handshaking(.features)
            return [.send([0x00])] + expect(now + timeouts.reply)
        case .features:
            guard answer[0] == Code.headerOK else { return unexpected() }
            stage = .handshaking(.auth)
            return expect(now + timeouts.reply)
        case .auth:
            switch answer[0] {
            case Code.authOK:
                return sendSize(now: now)
            case Code.requestAuth:
                guard credentials != nil else {
                    return fail(.refused, "authentication failed: the device wants a password and none is configured")
                }
                stage = .handshaking(.nonce)
                return expect(now + timeouts.reply)
            default:
                return unexpected()
            }
        case .nonce:
            let nonce = String(decoding: answer, as: UTF8.self)
            guard nonce.utf8.count == 32, let credentials else { return unexpected() }
            stage = .handshaking(.authResult)
            return [.send(ArduinoOTAWire.esphomeAuth(password: credentials.password, nonce: nonce, cnonce: cnonce()))] + expect(now + timeouts.reply)
        case .authResult:
            guard answer[0] == Code.authOK else { return unexpected() }
            return sendSize(now: now)
        case .prepare:
            guard answer[0] == Code.updatePrepareOK else { return unexpected() }
            stage = .handshaking(.md5)
            return [.send(Array((facts?.md5 ?? "").utf8))] + expect(now + timeouts.reply)
        case .md5:
            guard answer[0] == Code.binMD5OK else { return unexpected() }
            return stream(now: now)
        case .receiveOK:
            guard answer[0] == Code.receiveOK else { return unexpected() }
            stage = .handshaking(.endOK)
            return expect(now + timeouts.result)
        case .endOK:
            guard answer[0] == Code.updateEndOK else { return unexpected() }
            return [.send([Code.ok])] + took(now: now)
        }
    }

    mutating func sendSize(now: Int64) -> [Action] {
        stage = .handshaking(.prepare)
        return [.send(ArduinoOTAWire.esphomeSize(facts?.size ?? 0))] + expect(now + timeouts.reply)
    }
}
