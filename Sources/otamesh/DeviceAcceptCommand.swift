import ArgumentParser
import OTAMeshGateway

extension DeviceCommand {
    /// `otamesh device accept ID…`: admit devices that asked or were discovered, so rollouts
    /// update them under `devices.admission: known` (through the agent while it runs).
    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Admit devices for rollouts under devices.admission: known (devices added with `device add` are admitted already).")
        @OptionGroup var api: AdminOptions
        @Argument(help: "Device ids as `otamesh devices` lists them; several separated by commas.") var device: String

        func run() async throws {
            try await DeviceCommand.apply(.accept(ids: try DeviceCommand.ids(device)), api: api, command: "otamesh device accept")
        }
    }
}
