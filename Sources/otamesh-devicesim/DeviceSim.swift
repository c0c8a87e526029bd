import ArgumentParser

/// Emulates devices of every family for tests, benchmarks and the demo: `make-image` writes the
/// firmware such devices run, `run` emulates a fleet of one family against a gateway.
@main
struct DeviceSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "otamesh-devicesim",
        abstract: "Emulated devices for tests and demos.",
        subcommands: [MakeImage.self, RunFleet.self, ServeTwins.self, SelfTest.self])
}
