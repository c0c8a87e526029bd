import Logging
import OTAMeshStore
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGateway

/// The agent's release catalog: told of a change, it is read again and every subscriber hears it.
@Suite("release catalog")
struct ReleaseCatalogTests {
    @Test("a change reaches every subscriber, which first hears the catalog as it is; a subscriber that stops listening is forgotten")
    func changes() async throws {
        let dir = try TemporaryDirectory()
        let store = try BlobStore(configuration: StoreConfiguration(directory: dir.file("data")))
        let tuf = dir.file("data/tuf")
        let releases = ReleaseCatalog(
            store: store, tufDirectory: tuf, initial: try ServingCatalog.load(store: store, tufDirectory: tuf), logger: Logger(label: "test"))
        var first = releases.changes().makeAsyncIterator()
        var second = releases.changes().makeAsyncIterator()
        #expect(await first.next()?.blobs.isEmpty == true)
        #expect(await second.next()?.blobs.isEmpty == true)

        let blob = try store.add(bytes: Array("firmware".utf8))
        #expect(releases.current.blobs.isEmpty, "nothing is read until someone says it changed")
        releases.changed("test")
        #expect(releases.generation == 1 && releases.current.blobs[blob.sha256] != nil)
        #expect(await first.next()?.blobs[blob.sha256] != nil)
        #expect(await second.next()?.blobs[blob.sha256] != nil)

        // Two changes while a reader is busy: it hears the newest.
        _ = try store.add(bytes: Array("more".utf8))
        releases.changed("test")
        releases.changed("test")
        #expect(await first.next()?.blobs.count == 2)
        #expect(releases.generation == 3)
    }
}
