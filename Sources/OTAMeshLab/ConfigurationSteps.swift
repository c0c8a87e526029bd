import Foundation

/// The app-configuration steps of a scenario (docs/apps.md): settings go in through the real
/// `otamesh device config import` at one gateway; whether devices ended up configured is read
/// from what the emulated devices themselves report (their `configured` events).
extension LabRunner {
    /// Writes the group's CSV into the state directory and imports it at the gateway.
    func configure(_ spec: ConfigureSpec) throws(LabError) -> String {
        guard let group = deviceGroups[spec.group] else { throw LabError.state("unknown device group \(spec.group)") }
        try requireRunning(spec.at)
        let devices = launches.deviceIDs(group)
        let file = "\(paths.root)/configure-\(spec.group)-\(configureCount).csv"
        configureCount += 1
        guard FileManager.default.createFile(atPath: file, contents: Data(spec.csv(devices: devices).utf8)) else {
            throw LabError.state("cannot write \(file)")
        }
        guard let invocation = launches.configureCommand(csv: file, at: spec.at) else { throw LabError.state("cannot place gateway \(spec.at)") }
        let result = try shell.run(invocation, timeout: 30)
        guard result.status == 0 else {
            throw LabError.state(
                "otamesh device config import at \(spec.at) failed (exit \(result.status)): "
                    + Self.oneLine(result.errors.isEmpty ? result.output : result.errors))
        }
        return "\(devices.count) devices (\(file))"
    }

    /// The group's devices whose newest `configured` event does not hold `settings`, each with
    /// what it last read (or that it has not mounted a configuration yet).
    func notConfigured(_ name: String, settings: [String: String]) -> [String] {
        guard let group = deviceGroups[name] else { return ["unknown device group \(name)"] }
        let devices = launches.deviceIDs(group)
        let newest = Self.newestConfigured(log: paths.log("dev-\(name)"))
        return devices.compactMap { device in
            guard let read = newest[device] else { return "\(device) not configured yet" }
            let wrong = settings.sorted { $0.key < $1.key }.filter { read[$0.key] != $0.value }
            guard !wrong.isEmpty else { return nil }
            return "\(device) read " + wrong.map { "\($0.key)=\(read[$0.key] ?? "(none)")" }.joined(separator: ",")
        }
    }

    /// Each device's settings from its newest `configured` event in a devicesim log.
    static func newestConfigured(log path: String) -> [String: [String: String]] {
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        var newest: [String: [String: String]] = [:]
        for line in data.split(separator: 0x0A) where line.count < 16_384 {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                object["event"] as? String == "configured", let device = object["device"] as? String
            else { continue }
            var settings: [String: String] = [:]
            for (key, value) in object where key.hasPrefix("setting.") { settings[String(key.dropFirst(8))] = value as? String }
            newest[device] = settings
        }
        return newest
    }
}
