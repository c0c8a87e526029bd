import ArgumentParser

@main
struct OTAMesh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "otamesh",
        abstract: "Peer-to-peer LAN update mesh for firmware.",
        discussion: """
            Configuration comes from embedded defaults, then a YAML file (--config or OTAMESH_CONFIG), \
            then OTAMESH_* environment variables, then flags. See docs/operations.md.
            """,
        subcommands: [
            AgentCommand.self, ImageCommand.self, ImagesCommand.self, AppsCommand.self, ProvisionCommand.self, CacheCommand.self, ReleaseCommand.self,
            ExportCommand.self, ImportCommand.self, KeysCommand.self, TUFCommand.self, DeviceCommand.self, DevicesCommand.self, MembersCommand.self,
            RolloutCommand.self, ReportCommand.self,
            LabCommand.self,
        ]
    )
}
