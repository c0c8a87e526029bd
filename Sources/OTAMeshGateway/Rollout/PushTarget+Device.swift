import OTAMeshCommon
import OTAMeshDevices

extension PushTarget {
    /// The push target a registry record names: its address (`HOST` or `HOST:PORT`, port 80
    /// by default, ArduinoOTA's 3232 / 8266 for `arduino-ota`), variant, last seen version, proxy
    /// and options, and its credentials from the secret store (when one is given and names the device).
    public init(_ record: DeviceRecord, secrets: DeviceSecretStore? = nil) throws(DeviceSecretError) {
        let defaultPort = record.family == .arduinoOTA ? ArduinoOTAAdapter.defaultPort(variant: record.variant) : 80
        let (host, port) = PushTarget.hostAndPort(record.address, defaultPort: defaultPort)
        self.init(
            id: record.id, family: record.family, host: host, port: port, variant: record.variant, version: record.version,
            proxy: record.proxy, credentials: try secrets?.credentials(for: record.id), options: record.optionMap)
    }
}
