import Foundation
import OTAMeshFirmware

/// A sketch's filesystem partition, for `--filesystem`: its parameters (those of the app's build,
/// as the catalog gives them), where the configuration file is, and what the device last mounted.
/// The sketch calls `ESPhttpUpdate.updateFS(client, url, configID)` after its firmware check,
/// passing the `config-id` its configuration file holds (apps.md), so the gateway answers 304
/// once the filesystem is current.
struct DeviceFilesystem: Sendable {
    enum Kind: Sendable { case spiffs(SPIFFSParameters), littlefs(LittleFSParameters) }

    let kind: Kind
    let size: Int
    let configPath: String
    /// Keys whose values the emulator reports only as set (passwords).
    let secretKeys: Set<String>

    /// `spiffs:size=0x20000,page-size=256,block-size=4096,…` or `littlefs:size=…,block-size=4096,name-max=32`;
    /// `config=/config.json` names the configuration file.
    static func parse(_ text: String, secretKeys: Set<String>) throws -> DeviceFilesystem {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        var values: [String: String] = [:]
        for item in (parts.count > 1 ? parts[1] : "").split(separator: ",") {
            let pair = item.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { throw SpecError("\(item): not key=value") }
            values[pair[0]] = pair[1]
        }
        func integer(_ key: String, _ fallback: Int?) throws -> Int {
            guard let text = values.removeValue(forKey: key) else {
                guard let fallback else { throw SpecError("\(key)= is required") }
                return fallback
            }
            let lowered = text.lowercased()
            guard let number = lowered.hasPrefix("0x") ? Int(lowered.dropFirst(2), radix: 16) : Int(lowered) else {
                throw SpecError("\(key)=\(text): not a number")
            }
            return number
        }
        func flag(_ key: String, _ fallback: Bool) throws -> Bool {
            guard let text = values.removeValue(forKey: key) else { return fallback }
            switch text.lowercased() {
            case "1", "true", "yes": return true
            case "0", "false", "no": return false
            default: throw SpecError("\(key)=\(text): not true or false")
            }
        }
        let size = try integer("size", nil)
        let config = values.removeValue(forKey: "config") ?? "/config.json"
        let kind: Kind
        switch parts[0] {
        case "spiffs":
            kind = .spiffs(
                SPIFFSParameters(
                    imageSize: size, pageSize: try integer("page-size", 256), blockSize: try integer("block-size", 4096),
                    objectNameLength: try integer("obj-name-len", 32), metaLength: try integer("meta-len", 4), useMagic: try flag("use-magic", true),
                    useMagicLength: try flag("use-magic-len", true), alignedObjectIndexTables: try flag("aligned-obj-ix-tables", false)))
        case "littlefs":
            let blockSize = try integer("block-size", 4096)
            guard blockSize > 0, size % blockSize == 0 else { throw SpecError("size=\(size) is not a multiple of block-size=\(blockSize)") }
            kind = .littlefs(LittleFSParameters(blockSize: blockSize, blockCount: size / blockSize, nameMax: try integer("name-max", 32)))
        default:
            throw SpecError("\(parts[0]): spiffs or littlefs")
        }
        if let unknown = values.keys.sorted().first { throw SpecError("\(unknown): not a filesystem parameter") }
        return DeviceFilesystem(kind: kind, size: size, configPath: config, secretKeys: secretKeys)
    }

    struct SpecError: Error, CustomStringConvertible {
        let description: String
        init(_ text: String) { description = text }
    }

    /// What the device read after mounting an image: the `config-id` and the settings, values
    /// of ``secretKeys`` replaced by `set (N characters)`.
    struct Mounted: Sendable, Equatable {
        var configID: String
        var settings: [(String, String)]
        static func == (a: Mounted, b: Mounted) -> Bool { a.configID == b.configID && a.settings.elementsEqual(b.settings) { $0 == $1 } }
    }

    /// Mounts `image` as the firmware would (same parameters) and reads the configuration file.
    func mount(_ image: [UInt8]) -> Result<Mounted, SpecError> {
        let files: [(path: String, contents: [UInt8])]
        do {
            switch kind {
            case .spiffs(let parameters): files = try SPIFFSImage.read(image, parameters: parameters)
            case .littlefs(let parameters): files = try LittleFSImage.read(image, parameters: parameters)
            }
        } catch {
            return .failure(SpecError("mount failed: \(error)"))
        }
        let wanted = configPath.hasPrefix("/") ? configPath : "/" + configPath
        guard let file = files.first(where: { ($0.path.hasPrefix("/") ? $0.path : "/" + $0.path) == wanted }) else {
            return .failure(SpecError("no \(wanted) in the filesystem (\(files.map(\.path).joined(separator: ", ")))"))
        }
        var pairs: [(String, String)] = []
        if let object = try? JSONSerialization.jsonObject(with: Data(file.contents)) as? [String: Any] {
            for key in object.keys.sorted() {
                let value = object[key]!
                let text: String
                switch value {
                case let flag as Bool where type(of: value) == type(of: NSNumber(value: true)): text = flag ? "true" : "false"
                case let number as NSNumber: text = number.stringValue
                default: text = "\(value)"
                }
                pairs.append((key, text))
            }
        } else {
            // key=value lines
            for line in String(decoding: file.contents, as: UTF8.self).split(separator: "\n") {
                let pair = line.split(separator: "=", maxSplits: 1).map(String.init)
                if pair.count == 2 { pairs.append((pair[0], pair[1])) }
            }
        }
        guard let configID = pairs.first(where: { $0.0 == "config-id" })?.1 else { return .failure(SpecError("\(wanted) has no config-id")) }
        let shown = pairs.filter { $0.0 != "config-id" }.map { key, value in (key, secretKeys.contains(key) ? "set (\(value.count) characters)" : value) }
        return .success(Mounted(configID: configID, settings: shown))
    }
}
