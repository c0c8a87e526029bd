import Foundation
import Testing

/// The image bytes a gateway moved are counted across restarts (`DATA/traffic.json`).
@Suite("traffic totals across restarts", .serialized)
struct TrafficTotalsTests {
    /// This gateway's own `traffic` in `GET /api/v1/members`.
    static func ownServed(_ gateway: Gateway) -> Int64? {
        guard
            let (status, body, _) = try? runProgram(
                "/usr/bin/curl", ["-sf", "-H", "Authorization: Bearer \(gateway.readToken)", "\(gateway.admin)/api/v1/members"]),
            status == 0, let view = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
            let traffic = view["traffic"] as? [String: Any]
        else { return nil }
        return (traffic["servedToDevices"] as? NSNumber)?.int64Value
    }

    @Test("bytes served before a restart are still counted after it; an unreadable file is said once and counting starts again from zero")
    func survivesRestart() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("d")
        let image = try PublishedRelease.Image.esp32("esp32/app/2.0.0.bin", version: "2.0.0", size: 50000, file: dir.file("fw.bin"))
        _ = try PublishedRelease(in: dir, images: [image], importingInto: [data])
        let served = 2 * (fileSize(image.file) ?? 0)
        let first = try Gateway.start(data: data)
        for _ in 0..<2 {
            let (status, _, err) = try runProgram("/usr/bin/curl", ["-sf", "-o", "/dev/null", "\(first.device)/v1/targets/esp32/app/2.0.0.bin"])
            #expect(status == 0, "\(err)")
        }
        first.stop()
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(data)/traffic.json"))) as? [String: Any]
        #expect((saved?["servedToDevices"] as? NSNumber)?.int64Value == served, "\(served): \(String(describing: saved))")

        let second = try Gateway.start(data: data)
        var seen: Int64?
        #expect(
            waitUntil(timeout: 15) {
                seen = Self.ownServed(second); return seen == served
            }, "after the restart: \(String(describing: seen))")
        second.stop()

        try Data("{\"servedToDevices\": -5}".utf8).write(to: URL(fileURLWithPath: "\(data)/traffic.json"))
        let third = try Gateway.start(data: data)
        defer { third.stop() }
        #expect(
            waitUntil(timeout: 10) { third.child.stderr.text.contains("traffic.json: not the traffic totals this gateway saves") }, "\(third.child.stderr.text)"
        )
        #expect(waitUntil(timeout: 15) { Self.ownServed(third) == 0 })
    }
}
