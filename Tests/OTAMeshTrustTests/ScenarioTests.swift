import Foundation
import Testing

@testable import OTAMeshTrust

/// Runs the TUF client workflow against repositories made by python-tuf (tuf 7.0.1,
/// Tests/Fixtures/tuf/generate.py): the good ones must verify, every attack must be refused
/// with the error kind and role the specification calls for.
@Suite("python-tuf repositories")
struct ScenarioTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tuf")
    /// Fixtures expire in 2099 (or expired in 2001).
    static let now = ISOTime.parse("2026-11-23T00:00:00Z")!

    static let scenarios: [String: JSONValue] = {
        guard let data = try? Data(contentsOf: root.appendingPathComponent("scenarios.json")),
            let value = try? JSONValue.parse([UInt8](data)), let object = value.objectValue
        else { return [:] }
        return Dictionary(uniqueKeysWithValues: object.members.map { ($0.key, $0.value) })
    }()

    @Test("fixtures are present")
    func present() {
        #expect(Self.scenarios.count >= 40)
    }

    /// Where otamesh deliberately follows the TUF conformance suite (and python-tuf) rather than
    /// the letter of the spec: key ids are not recomputed (see `Parse.keys`).
    static let acceptedDepartures: Set<String> = ["keyid-mismatch"]

    @Test("outcome matches the specification", arguments: scenarios.keys.sorted())
    func scenario(name: String) async throws {
        var spec = try #require(Self.scenarios[name])
        if Self.acceptedDepartures.contains(name), let ngclient = spec["ngclient"] {
            spec = ngclient.setting("targets", spec["targets"] ?? .object(JSONObject()))
        }
        let dir = Self.root.appendingPathComponent(name)
        let persistence = MemoryPersistence(directory: dir.appendingPathComponent("client").path)
        var updater = Updater(
            metadata: DirectoryFiles(root: dir.appendingPathComponent("server/metadata").path),
            targets: DirectoryFiles(root: dir.appendingPathComponent("server/targets").path),
            persistence: persistence, now: Self.now)
        var refresh: TrustError?
        do throws(TrustError) { try await updater.refresh() } catch { refresh = error }
        if let expected = spec["refresh"]?.objectValue {
            let error = try #require(refresh, "\(name): refresh succeeded, expected \(expected["error"]?.stringValue ?? "")")
            #expect(Self.kinds(of: error).contains(expected["error"]?.stringValue ?? ""), "\(name): \(error)")
            if let role = expected["role"]?.stringValue {
                #expect(Self.role(of: error) == role, "\(name): \(error)")
            }
            return
        }
        #expect(refresh == nil, "\(name): \(refresh.map(String.init(describing:)) ?? "")")
        guard refresh == nil, let targets = spec["targets"]?.objectValue else { return }
        for (path, outcome) in targets.members {
            let result: Result<TargetFile?, TrustError>
            do throws(TrustError) {
                if let info = try await updater.targetInfo(path) {
                    _ = try await updater.download(info)
                    result = .success(info)
                } else {
                    result = .success(nil)
                }
            } catch { result = .failure(error) }
            switch (outcome.stringValue, result) {
            case ("ok", .success(let info)): #expect(info != nil, "\(name): \(path) not found")
            case ("absent", .success(let info)): #expect(info == nil, "\(name): \(path) should not be trusted")
            case (nil, .failure(let error)):
                let kind = outcome["error"]?.stringValue ?? ""
                #expect(Self.kinds(of: error).contains(kind), "\(name): \(path): \(error), expected \(kind)")
            default:
                Issue.record("\(name): \(path): expected \(outcome), got \(result)")
            }
        }
        // Whatever was trusted is persisted for the next refresh.
        #expect(persistence.files["timestamp.json"] != nil && persistence.files["snapshot.json"] != nil)
    }

    /// The fixture vocabulary for an error.
    static func kinds(of error: TrustError) -> [String] {
        switch error {
        case .expired: ["expired"]
        case .rollback, .metaRollback: ["rollback"]
        case .threshold(let role, _, _): ["threshold", "bad-signature"] + (role == Role.root ? ["root-rotation"] : [])
        case .lengthMismatch: ["length"]
        case .tooLarge: ["length", "size-limit"]
        case .hashMismatch: ["hash"]
        case .versionMismatch(let role, _, _): ["version-mismatch"] + (role == Role.root ? ["root-rotation", "rollback"] : [])
        case .notFound: ["not-found"]
        case .malformed: ["invalid-metadata", "threshold"]
        default: ["other"]
        }
    }

    static func role(of error: TrustError) -> String {
        func base(_ file: String) -> String {
            var name = file
            if name.hasSuffix(".json") { name.removeLast(5) }
            if let dot = name.firstIndex(of: "."), Int(name[..<dot]) != nil { name = String(name[name.index(after: dot)...]) }
            return name
        }
        switch error {
        case let .expired(role, _, _), let .rollback(role, _, _), let .metaRollback(role, _, _, _),
            let .versionMismatch(role, _, _), let .threshold(role, _, _), let .missingMeta(role, _), let .notLoaded(role, _):
            return role
        case let .malformed(file, _), let .wrongType(file, _, _), let .lengthMismatch(file, _, _), let .tooLarge(file, _),
            let .hashMismatch(file, _, _, _), let .fetch(file, _), let .notFound(file), let .unsupportedHash(file, _):
            return base(file)
        case .rootRotationLimit: return Role.root
        case .targetNotFound(let path): return path
        case .invalidImage(let file, _): return file
        case .unsignedCommand(let kind, _, _, _), .replayedCommand(let kind, _, _): return kind
        case .wrongSite: return "command"
        }
    }
}
