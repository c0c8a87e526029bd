import Foundation
import Testing

@testable import OTAMeshLab

@Suite("convergence")
struct ConvergenceTests {
    static let a = String(repeating: "a", count: 64)
    static let b = String(repeating: "b", count: 64)

    func report(_ node: String, _ members: [(String, String)], images: [String]) -> MembersReport {
        let json = """
            {"node":"\(node)","members":[\(members.map { #"{"name":"\#($0.0)","status":"\#($0.1)","address":"10.77.0.1:7946","http":"http://10.77.0.1:8070","images":[]}"# }.joined(separator: ","))],"images":[\(images.map { "\"\($0)\"" }.joined(separator: ","))]}
            """
        return MembersReport.decode(Data(json.utf8))!
    }

    @Test("the members answer decodes")
    func decode() {
        let json =
            #"{"node":"gw1","members":[{"name":"gw2","status":"suspect","address":"10.77.0.12:7946","http":"http://10.77.0.12:8070","images":["\#(Self.a)"]}],"images":["\#(Self.a)"]}"#
        let decoded = MembersReport.decode(Data(json.utf8))
        #expect(decoded?.node == "gw1" && decoded?.member("gw2")?.status == "suspect" && decoded?.member("gw2")?.images == [Self.a])
        #expect(MembersReport.decode(Data("not json".utf8)) == nil)
    }

    @Test("converged: everyone alive to everyone, every image everywhere")
    func converged() {
        let expected: Set = [Self.a, Self.b]
        var reports: [String: MembersReport?] = [
            "gw1": report("gw1", [("gw2", "alive"), ("gw3", "alive")], images: [Self.a, Self.b]),
            "gw2": report("gw2", [("gw1", "alive"), ("gw3", "suspect")], images: [Self.a]),
            "gw3": nil,
        ]
        #expect(
            Convergence.converged(reports: reports, running: ["gw1", "gw2", "gw3"], expectedImages: expected)
                == ["gw2 sees gw3 suspect", "gw2 lacks 1/2 images", "gw3: no members answer"])
        reports["gw2"] = report("gw2", [("gw1", "alive"), ("gw3", "alive")], images: [Self.b, Self.a])
        reports["gw3"] = report("gw3", [("gw1", "alive"), ("gw2", "alive"), ("gw3", "alive")], images: [Self.a, Self.b])
        #expect(Convergence.converged(reports: reports, running: ["gw1", "gw2", "gw3"], expectedImages: expected).isEmpty)
        // A stopped gateway is not expected to answer or be seen.
        #expect(
            Convergence.converged(
                reports: ["gw1": report("gw1", [("gw2", "failed")], images: [Self.a, Self.b])],
                running: ["gw1"], expectedImages: expected
            ).isEmpty)
    }

    @Test("failed and alive are judged by the others")
    func failedAndAlive() {
        let reports: [String: MembersReport?] = [
            "gw1": report("gw1", [("gw2", "failed")], images: []),
            "gw3": report("gw3", [("gw2", "suspect")], images: []),
        ]
        #expect(Convergence.failed("gw2", reports: reports, running: ["gw1", "gw3"]) == ["gw3 sees gw2 suspect"])
        #expect(Convergence.failed("gw2", reports: ["gw1": report("gw1", [], images: [])], running: ["gw1"]).isEmpty)
        #expect(Convergence.alive("gw2", reports: reports, running: ["gw1", "gw2", "gw3"]) == ["gw1 sees gw2 failed", "gw3 sees gw2 suspect"])
        // Named observers: one side of a partition sees the other fail.
        #expect(Convergence.failed("gw2", by: ["gw1"], reports: reports, running: ["gw1", "gw3"]).isEmpty)
        #expect(Convergence.failed("gw2", by: ["gw1", "gw4"], reports: reports, running: ["gw1", "gw3"]) == ["gw4: no members answer"])
    }
}
