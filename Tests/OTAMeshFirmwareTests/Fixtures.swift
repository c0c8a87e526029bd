import Foundation

/// Locates committed fixtures under Tests/Fixtures.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    static func bytes(_ relative: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url(relative)))
    }

    /// Decodes a JSON fixture.
    static func decode<T: Decodable>(_ relative: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: url(relative)))
    }

    /// File names in a fixture directory with a given suffix.
    static func names(in directory: String, suffix: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url(directory).path)) ?? []
        return names.filter { $0.hasSuffix(suffix) }.sorted()
    }
}
