import Testing

@testable import OTAMeshGateway

@Suite("Connection caps")
struct ConnectionBudgetTests {
    typealias Budget = ConnectionBudget<Int>

    @Test("a flood from one address sheds that address's oldest idle connection, not another device's")
    func perAddressShedsOwnOldest() {
        var budget = Budget(limits: .init(total: 10, perAddress: 3))
        #expect(budget.admit(1, address: "10.0.0.9") == .admitted(shed: []))  // a device
        for key in 100..<103 { #expect(budget.admit(key, address: "10.0.0.66") == .admitted(shed: [])) }
        #expect(budget.admit(103, address: "10.0.0.66") == .admitted(shed: [100]))
        #expect(budget.admit(104, address: "10.0.0.66") == .admitted(shed: [101]))
        #expect(budget.count(from: "10.0.0.66") == 3)
        #expect(budget.count(from: "10.0.0.9") == 1)
    }

    @Test("a full listener sheds the flooding address's oldest idle connection, not a device's single one")
    func fullListenerShedsLargestHolder() {
        var budget = Budget(limits: .init(total: 6, perAddress: 4))
        #expect(budget.admit(1, address: "device") == .admitted(shed: []))  // oldest of all, idle
        for key in 10..<13 { _ = budget.admit(key, address: "flood-a") }
        for key in 20..<22 { _ = budget.admit(key, address: "flood-b") }
        #expect(budget.admit(23, address: "flood-b") == .admitted(shed: [10]), "flood-a holds the most")
        #expect(budget.admit(2, address: "device2") == .admitted(shed: [20]), "then flood-b holds the most")
        #expect(budget.count(from: "device") == 1)
    }

    @Test("a full listener sheds the connection idle the longest; a download in flight is never shed")
    func fullListenerShedsOldestIdle() {
        var budget = Budget(limits: .init(total: 3, perAddress: 3))
        _ = budget.admit(1, address: "a")
        _ = budget.admit(2, address: "b")
        _ = budget.admit(3, address: "c")
        budget.setBusy(1, true)  // downloading
        #expect(budget.admit(4, address: "d") == .admitted(shed: [2]))
        // 3 finished a request just now: it is the newest idle one, 4 is older.
        budget.setBusy(3, true)
        budget.setBusy(3, false)
        #expect(budget.admit(5, address: "e") == .admitted(shed: [4]))
        #expect(budget.count == 3)
    }

    @Test("only when every connection is busy is a new one refused, and a closed one frees its place")
    func refusedWhenAllBusy() {
        var budget = Budget(limits: .init(total: 2, perAddress: 2))
        _ = budget.admit(1, address: "a")
        _ = budget.admit(2, address: "b")
        budget.setBusy(1, true)
        budget.setBusy(2, true)
        #expect(budget.admit(3, address: "c") == .refused(.listenerFull))
        #expect(budget.count == 2)
        budget.remove(2)
        #expect(budget.admit(3, address: "c") == .admitted(shed: []))
        budget.remove(99)  // unknown: ignored
        #expect(budget.count == 2)
    }

    @Test("an address whose connections are all busy gets no more, while others still do")
    func addressFullOfBusy() {
        var budget = Budget(limits: .init(total: 10, perAddress: 2))
        _ = budget.admit(1, address: "a")
        _ = budget.admit(2, address: "a")
        budget.setBusy(1, true)
        budget.setBusy(2, true)
        #expect(budget.admit(3, address: "a") == .refused(.addressFull("a")))
        #expect(budget.admit(4, address: "b") == .admitted(shed: []))
    }

    @Test("caps derived from the open-files limit leave a reserve for the store", arguments: [256, 1024, 65_536, 1 << 20])
    func derivedLimits(fileLimit: Int) {
        let limits = ConnectionLimits.derived(fileLimit: fileLimit)
        // Every device connection may hold a second descriptor (the blob it serves).
        let worst = 2 * limits.device.total + limits.admin.total + limits.gossip.total
        #expect(worst + ConnectionLimits.reserve(fileLimit: fileLimit) <= max(fileLimit, 256))
        #expect(limits.device.perAddress <= limits.device.total)
        #expect(limits.admin.total <= 64 && limits.gossip.total <= 256)
        let configured = ConnectionLimits.derived(fileLimit: fileLimit, deviceTotal: 50, devicePerAddress: 5)
        #expect(configured.device == .init(total: 50, perAddress: 5))
    }
}
