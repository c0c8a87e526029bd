import Foundation
import OTAMeshFuzz
import Testing

/// Replays every fuzz target's seed corpus (Tests/Fixtures/fuzz/<target>/: small valid inputs
/// and every reproducer a fuzz run found) through the same function `make fuzz` runs under
/// libFuzzer: a parser that traps on one of them fails the test run.
@Suite("fuzz corpora")
struct FuzzCorpusTests {
    static let corpusRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/fuzz")

    static func corpus(_ target: String) -> [URL] {
        let directory = corpusRoot.appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
    }

    @Test("every target's corpus replays without a crash", arguments: FuzzTargets.names)
    func replay(_ target: String) throws {
        let files = Self.corpus(target)
        #expect(!files.isEmpty, "no seed corpus in Tests/Fixtures/fuzz/\(target)")
        let run = try #require(FuzzTargets.all[target])
        for file in files {
            run(Array(try Data(contentsOf: file)))
        }
    }

    @Test("every corpus directory belongs to a target")
    func noStrayCorpus() throws {
        let directories = try FileManager.default.contentsOfDirectory(atPath: Self.corpusRoot.path).filter { name in
            var isDirectory: ObjCBool = false
            return !name.hasPrefix(".") && FileManager.default.fileExists(atPath: Self.corpusRoot.appendingPathComponent(name).path, isDirectory: &isDirectory)
                && isDirectory.boolValue
        }
        #expect(Set(directories) == Set(FuzzTargets.names))
    }

    @Test("the Swift-made seeds replay too; OTAMESH_FUZZ_WRITE_SEEDS=1 writes them into the corpora")
    func generatedSeeds() throws {
        let write = ProcessInfo.processInfo.environment["OTAMESH_FUZZ_WRITE_SEEDS"] == "1"
        for (target, seeds) in FuzzSeeds.generated() {
            let run = try #require(FuzzTargets.all[target])
            for (name, bytes) in seeds {
                run(bytes)
                guard write else { continue }
                let directory = Self.corpusRoot.appendingPathComponent(target)
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                try Data(bytes).write(to: directory.appendingPathComponent("seed-" + name))
            }
        }
    }
}
