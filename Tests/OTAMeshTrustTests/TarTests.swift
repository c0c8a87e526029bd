import Testing

@testable import OTAMeshTrust

@Suite("tar bundles")
struct TarTests {
    @Test("round trip, long paths")
    func roundTrip() throws {
        let long = String(repeating: "d/", count: 60) + "file.bin"
        let entries = [Tar.Entry(path: "metadata/1.root.json", bytes: Array("{}".utf8)), Tar.Entry(path: long, bytes: [1, 2, 3])]
        #expect(try Tar.read(try Tar.write(entries), file: "t.tar") == entries)
    }

    @Test("hostile archives are refused with the entry named", arguments: ["../evil", "/etc/passwd", "a/./b", "a//b"])
    func hostilePaths(path: String) throws {
        var archive = try Tar.write([Tar.Entry(path: "placeholder", bytes: [0])])
        // Rewrite the name field and fix the header checksum, as an attacker would.
        for i in 0..<100 { archive[i] = 0 }
        for (i, byte) in path.utf8.enumerated() { archive[i] = byte }
        Self.fixChecksum(&archive)
        #expect { try Tar.read(archive, file: "t.tar") } throws: { error in
            (error as? TrustError)?.description.contains("bundle paths must be relative") == true
        }
    }

    /// Recomputes the first header's checksum, as an attacker crafting an archive would.
    static func fixChecksum(_ archive: inout [UInt8]) {
        for i in 148..<156 { archive[i] = 0x20 }
        let sum = String(archive[0..<512].reduce(0) { $0 + Int($1) }, radix: 8)
        for (i, byte) in Array(sum.utf8).enumerated() { archive[148 + i] = byte }
        archive[148 + sum.count] = 0
    }

    @Test("symlinks, damaged headers and missing end markers are refused")
    func otherDamage() throws {
        var link = try Tar.write([Tar.Entry(path: "x", bytes: [])])
        link[156] = UInt8(ascii: "2")
        Self.fixChecksum(&link)
        #expect(throws: TrustError.malformed(file: "t.tar", reason: "x: only regular files are allowed (type 2)")) {
            try Tar.read(link, file: "t.tar")
        }
        var damaged = try Tar.write([Tar.Entry(path: "x", bytes: [1])])
        damaged[10] ^= 1
        #expect(throws: TrustError.self) { try Tar.read(damaged, file: "t.tar") }
        let good = try Tar.write([Tar.Entry(path: "x", bytes: [1])])
        #expect(throws: TrustError.self) { try Tar.read(Array(good.prefix(1024)), file: "t.tar") }
    }
}
