import Foundation
import Testing

@testable import OTAMeshTrust

/// Canonical JSON must match securesystemslib's `encode_canonical` byte for byte, or no
/// signature made by python-tuf verifies. Vectors: Tests/Fixtures/tuf/canonical.json.
@Suite("canonical JSON")
struct CanonicalJSONTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tuf")

    @Test("matches securesystemslib on every vector")
    func vectors() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("canonical.json"))
        let array = try #require(try JSONValue.parse([UInt8](data)).arrayValue)
        #expect(array.count >= 30)
        for (index, vector) in array.enumerated() {
            let input = try #require(vector["input"])
            let encoded = try #require(vector["canonical_b64"]?.stringValue)
            let expected = try #require(Data(base64Encoded: encoded))
            #expect(input.canonicalBytes == [UInt8](expected), "vector \(index): \(String(decoding: input.canonicalBytes, as: UTF8.self))")
            // Parsing the canonical form gives the same value back (where it is valid JSON at all:
            // canonical JSON writes control characters raw, which JSON forbids).
            if !expected.contains(where: { $0 < 0x20 }) {
                #expect(try JSONValue.parse([UInt8](expected)) == input, "vector \(index) round trip")
            }
        }
    }

    @Test("compact JSON parses back to the value, control characters included (fuzz finding), and is canonical without them")
    func compactRoundTrip() throws {
        let value = JSONValue.object(["note": .string("line 1\nline 2\u{01}\t\"q\" \\"), "a": .array([.integer(-1), .null, .bool(true)])])
        #expect(throws: JSONError.self) { try JSONValue.parse(value.canonicalBytes) }  // securesystemslib writes them raw
        #expect(try JSONValue.parse(value.compactBytes) == value)
        #expect(try JSONValue.parse(value.compactBytes).canonicalBytes == value.canonicalBytes)
        let plain = JSONValue.object(["b": .string("é \"x\" \\ /"), "a": .array([.integer(7), .object([:] as KeyValuePairs<String, JSONValue>)])])
        #expect(plain.compactBytes == plain.canonicalBytes)
    }

    @Test("keys that Swift String equality would merge stay distinct")
    func scalarKeys() throws {
        let value = try JSONValue.parse(Array(#"{"e\u0301":1,"\u00e9":2}"#.utf8))
        #expect(value.objectValue?.count == 2)
        #expect(value["é"] == .integer(2))
        #expect(value["e\u{301}"] == .integer(1))
    }

    @Test(
        "strict parsing: duplicates, floats, depth, bad escapes and garbage are errors",
        arguments: [
            #"{"a":1,"a":2}"#, "1.5", "1e3", "[01]", #""\u12""#, #""\ud800""#, "[1,]", "{", "tru", "\"a\u{01}\"", #""\x""#,
            String(repeating: "[", count: 100) + String(repeating: "]", count: 100), "", "1 2", #""\u+123""#,
        ])
    func rejects(text: String) {
        #expect(throws: JSONError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test("ISO 8601 times round trip")
    func isoTime() {
        #expect(ISOTime.parse("1970-01-01T00:00:00Z") == 0)
        #expect(ISOTime.parse("2030-01-01T00:00:00Z") == 1_893_456_000)
        #expect(ISOTime.format(1_893_456_000) == "2030-01-01T00:00:00Z")
        #expect(ISOTime.parse("2024-02-29T23:59:59Z").map(ISOTime.format) == "2024-02-29T23:59:59Z")
        #expect(ISOTime.parse("2030-01-01 00:00:00Z") == nil)
        #expect(ISOTime.parse("2030-13-01T00:00:00Z") == nil)
    }

    @Test("delegation path globs: * does not cross /")
    func globs() {
        #expect(Glob.matches(pattern: "esp32/*", path: "esp32/a.bin"))
        #expect(!Glob.matches(pattern: "esp32/*", path: "esp32/projectMM/a.bin"))
        #expect(Glob.matches(pattern: "*/*.bin", path: "w800/x.bin"))
        #expect(Glob.matches(pattern: "file?.txt", path: "file1.txt"))
        #expect(!Glob.matches(pattern: "file?.txt", path: "file12.txt"))
    }
}
