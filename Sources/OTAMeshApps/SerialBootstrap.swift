import OTAMeshFirmware

/// A device's first flash by serial (`otamesh provision`): the parts the catalog names
/// (bootloader, partition table, …), the app at its offset and the configuration filesystem at
/// its offset, merged as `esptool merge-bin` merges them (gaps 0xFF). Pure.
public enum SerialBootstrap {
    /// The flash parts, in address order. `parts` maps each catalog part's target path to its
    /// bytes (all must be there).
    public static func parts(
        _ release: AppRelease, firmware: [UInt8], parts contents: [String: [UInt8]], configuration: ConfigurationImage?
    ) -> [FlashPart] {
        var parts = release.parts.compactMap { part in contents[part.target].map { FlashPart(offset: part.offset, contents: $0, name: part.name) } }
        parts.append(FlashPart(offset: release.appOffset, contents: firmware, name: release.firmware))
        if let configuration, let filesystem = release.filesystem {
            parts.append(FlashPart(offset: filesystem.offset, contents: configuration.bytes, name: "\(filesystem.kind.rawValue) \(release.config.path)"))
        }
        return parts.sorted { $0.offset < $1.offset }
    }

    /// esptool's `--chip` for a catalog hardware name: the chip itself when esptool knows it
    /// (`esp32s3`, also from `esp32s3-eth`), else `auto` (esptool asks the chip).
    public static func esptoolChip(hardware: String) -> String {
        let known = ["esp8266", "esp32", "esp32s2", "esp32s3", "esp32c2", "esp32c3", "esp32c5", "esp32c6", "esp32c61", "esp32h2", "esp32p4"]
        let lowered = hardware.lowercased()
        return known.sorted { $0.count > $1.count }.first { lowered == $0 || lowered.hasPrefix($0 + "-") } ?? "auto"
    }
}
