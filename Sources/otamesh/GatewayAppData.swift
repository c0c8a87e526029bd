import Foundation
import OTAMeshApps
import OTAMeshGateway
import OTAMeshStore
import OTAMeshTrust

/// A gateway's data directory as the app commands read it without the agent (`provision`,
/// `device config show|push`): the registry, the store read-only, the trusted targets and
/// their app catalog. Reading never creates a data directory.
struct GatewayAppData {
    let registry: DeviceRegistry
    let store: BlobStore
    let trusted: [(TargetFile, inCache: Bool)]
    let catalog: AppCatalog

    init(directory: String) throws {
        guard FileManager.default.fileExists(atPath: "\(directory)/devices.sqlite") else {
            throw CommandFailure("no gateway data at \(directory): give --data-dir DIR of a gateway")
        }
        registry = try DeviceRegistry(path: "\(directory)/devices.sqlite")
        store = try BlobStore(configuration: StoreConfiguration(directory: directory), mode: .readOnly)
        trusted = try ReleaseCatalog.trustedTargets(tufDirectory: "\(directory)/tuf", store: store)
        catalog = AppCatalog(targets: trusted.map(\.0))
    }
}
