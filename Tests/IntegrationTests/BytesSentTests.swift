import Foundation
import OTAMeshTestSupport
import Testing

/// `otamesh_device_bytes_sent_total` counts what went out, not what a response announced: a
/// client that takes 64 KiB of a 24 MB image and leaves adds at most what it was sent.
@Suite("device bytes sent")
struct BytesSentTests {
    static func metric(_ admin: String) -> Double? {
        guard let text = try? runProgram("/usr/bin/curl", ["-s", "\(admin)/metrics"]).1 else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("otamesh_device_bytes_sent_total ") }
            .flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test("a client that leaves early is not counted for the bytes it never got")
    func countsWrittenBytes() throws {
        let dir = try TemporaryDirectory()
        let images = try [("big", 24_000_000), ("small", 100_000)].map { name, size in
            try PublishedRelease.Image.esp32("esp32/\(name).bin", version: "1.0.0", size: size, file: dir.file("\(name).bin"))
        }
        _ = try PublishedRelease(in: dir, images: images, importingInto: [dir.file("d")], timeout: 300)
        let gateway = try Gateway.start(data: dir.file("d"), extra: ["--gossip-listen", "off"])
        defer { gateway.stop() }
        let before = try #require(Self.metric(gateway.admin))

        // Read 64 KiB of the big image, then hang up.
        let (partial, _, partialErr) = try runProgram(
            "/usr/bin/curl",
            [
                "-s", "-r", "0-", "--max-filesize", "100000000", "-o", "/dev/null",
                "--limit-rate", "1M", "--max-time", "1", "\(gateway.device)/v1/targets/esp32/big.bin",
            ])
        #expect(partial != 0, "the client was meant to give up early: \(partialErr)")
        // Then a whole small image: once it is counted, everything before it is too.
        let small = try Data(contentsOf: URL(fileURLWithPath: dir.file("small.bin"))).count
        let (fetched, _, _) = try runProgram("/usr/bin/curl", ["-sf", "-o", "/dev/null", "\(gateway.device)/v1/targets/esp32/small.bin"])
        #expect(fetched == 0)
        var now = before
        let counted = waitUntil(timeout: 20) {
            now = Self.metric(gateway.admin) ?? before
            return now - before >= Double(small)
        }
        #expect(counted, "the small image was counted: \(now - before)")
        #expect(now - before < Double(small) + 12_000_000, "counted \(Int(now - before)) bytes: the 24 MB the early client never took were counted")
    }
}
