import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGateway

/// The registry as the agent and `otamesh device assign` share it: two handles on one database.
@Suite("device registry")
struct DeviceRegistryTests {
    @Test("invented ids from one address forget that address's oldest unknown devices, in memory and on disk; vouched-for devices stay")
    func unknownDevicesAreCapped() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("devices.sqlite")
        let agent = try DeviceRegistry(path: path)
        agent.unknownLimits = .init(total: 50, perAddress: 10)
        let cli = try DeviceRegistry(path: path)
        func sighting(_ id: String, _ address: String) -> DeviceSighting {
            DeviceSighting(id: id, family: .generic, version: "1.0", address: address, answer: "no assignment")
        }
        agent.observe(sighting("lobby-sensor", "10.0.0.7"), at: 1)
        agent.observe(sighting("accepted-one", "10.0.0.66"), at: 1)
        try agent.flush()
        try cli.accept("accepted-one")
        try agent.reloadAssignments()
        for n in 0..<200 {
            agent.observe(sighting("fake-\(n)", "10.0.0.66"), at: Double(2 + n))
            if n % 37 == 0 { try agent.flush() }
        }
        try agent.flush()
        let fakes = agent.all().filter { $0.id.hasPrefix("fake-") }.map(\.id).sorted()
        #expect(fakes.count == 10, "one address keeps at most perAddress unknown devices")
        #expect(Set(fakes) == Set((190..<200).map { "fake-\($0)" }), "the newest stay, the oldest were forgotten")
        #expect(agent.device("lobby-sensor") != nil, "another address's device is untouched")
        #expect(agent.device("accepted-one") != nil, "an accepted device is never forgotten")
        let stored = try cli.list().map(\.id)
        #expect(stored.filter { $0.hasPrefix("fake-") }.count == 10, "forgotten devices are gone from disk too: \(stored.count) rows")
        try agent.reloadAssignments()
        #expect(agent.all().count == 12, "a reload does not bring forgotten devices back")
        #expect(agent.evictions == 190)

        // Many addresses: the total cap forgets the oldest unknown device anywhere.
        for n in 0..<100 { agent.observe(sighting("wide-\(n)", "10.1.\(n / 250).\(n % 250)"), at: Double(300 + n)) }
        try agent.flush()
        let unknown = agent.all().filter { !$0.admitted }
        #expect(unknown.count <= 50)
        #expect(agent.device("wide-99") != nil && agent.device("wide-0") == nil)
        #expect(agent.device("accepted-one") != nil)
        #expect(try cli.list().filter { !$0.admitted }.count == unknown.count)
    }

    @Test("sightings are batched; a flush never overwrites an assignment the CLI made meanwhile")
    func agentAndCLI() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("devices.sqlite")
        let agent = try DeviceRegistry(path: path)
        let cli = try DeviceRegistry(path: path)

        agent.observe(
            DeviceSighting(
                id: "aa:bb:cc:dd:ee:ff", family: .generic, hardware: "esp32", version: "1.0.0",
                address: "10.0.0.7", answer: "no assignment"), at: 100)
        #expect(try cli.list().isEmpty, "nothing is written before a flush")
        try agent.flush()
        #expect(try cli.list().map(\.id) == ["aa:bb:cc:dd:ee:ff"])

        try cli.assign("aa:bb:cc:dd:ee:ff", target: "esp32/app/2.0.0.bin", at: 101)
        try cli.assign("new-device", target: "esp32/app/2.0.0.bin", at: 101)
        // The agent sees the device again before it re-reads assignments, then flushes.
        agent.observe(
            DeviceSighting(
                id: "aa:bb:cc:dd:ee:ff", family: .generic, version: "1.0.1", address: "10.0.0.7",
                answer: "no assignment"), at: 102)
        try agent.flush()
        let stored = try #require(try cli.list().first { $0.id == "aa:bb:cc:dd:ee:ff" })
        #expect(stored.assignedTarget == "esp32/app/2.0.0.bin")
        #expect(stored.version == "1.0.1" && stored.hardware == "esp32" && stored.firstSeen == 100 && stored.lastSeen == 102)

        #expect(agent.assignment(for: "aa:bb:cc:dd:ee:ff") == nil)
        try agent.reloadAssignments()
        #expect(agent.assignment(for: "aa:bb:cc:dd:ee:ff") == "esp32/app/2.0.0.bin")
        #expect(agent.assignment(for: "new-device") == "esp32/app/2.0.0.bin")
        try cli.assign("aa:bb:cc:dd:ee:ff", target: nil, at: 103)
        try agent.reloadAssignments()
        #expect(agent.assignment(for: "aa:bb:cc:dd:ee:ff") == nil)
    }

    @Test("what a device sends is bounded before it is stored; an over-long id or one with NUL is answered but not kept")
    func bounded() throws {
        let dir = try TemporaryDirectory()
        let registry = try DeviceRegistry(path: dir.file("devices.sqlite"))
        let huge = String(repeating: "x", count: 25_000)
        registry.observe(
            DeviceSighting(id: "dev-1", family: DeviceFamily(rawValue: huge), hardware: huge, version: huge, address: huge, answer: huge, variant: huge), at: 1)
        registry.observe(DeviceSighting(id: String(repeating: "i", count: 25_000), family: .generic, address: "10.0.0.1", answer: ""), at: 1)
        registry.observe(DeviceSighting(id: "dev\u{0}2", family: .generic, address: "10.0.0.2", answer: ""), at: 1)
        try registry.flush()
        let stored = try registry.list()
        #expect(stored.map(\.id) == ["dev-1"])
        let device = try #require(stored.first)
        #expect(
            device.version?.count == DeviceSighting.maxField && device.hardware?.count == DeviceSighting.maxField
                && device.variant?.count == DeviceSighting.maxField)
        #expect(device.family.rawValue.count <= 32 && device.address.count <= 64 && (device.lastAnswer?.count ?? 0) <= 200)
        #expect(registry.all().map(\.id) == ["dev-1"], "memory and SQLite agree")
    }

    @Test("a registry path that cannot be opened is an error naming it")
    func unusable() throws {
        let dir = try TemporaryDirectory()
        #expect(throws: RegistryError.self) { try DeviceRegistry(path: dir.file("missing/dir/devices.sqlite")) }
    }
}
