import ArgumentParser
import OTAMeshGateway

extension DeviceCommand {
    /// `otamesh device accept ID…`: admit devices that asked or were discovered, so rollouts
    /// update them under `devices.admission: known` (works while the agent runs).
    struct Accept: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Admit devices for rollouts under devices.admission: known (devices added with `device add` are admitted already).")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "Device ids as `otamesh devices` lists them; several separated by commas.") var device: String

        func run() throws {
            let (registry, configuration) = try DeviceCommand.registry(options)
            let ids = device.split(separator: ",").map { DeviceRegistry.normalizedID(String($0)) }.filter { !$0.isEmpty }
            guard !ids.isEmpty else { throw ValidationError("no device id given") }
            try reporting("otamesh device accept") {
                var unknown: [String] = []
                for id in ids {
                    if try registry.accept(id) {
                        Output.out(
                            "\(id): accepted" + (configuration.deviceAdmission == .open ? " (devices.admission is open: every device is updated anyway)" : ""))
                    } else {
                        unknown.append(id)
                    }
                }
                guard unknown.isEmpty else {
                    throw DeviceAcceptError(ids: unknown, data: configuration.dataDirectory)
                }
            }
        }
    }
}

struct DeviceAcceptError: Error, CustomStringConvertible {
    let ids: [String]
    let data: String
    var description: String {
        "no device \(ids.joined(separator: ", ")) in \(data)/devices.sqlite (see otamesh devices; a device is listed once it asked or was discovered)"
    }
}
