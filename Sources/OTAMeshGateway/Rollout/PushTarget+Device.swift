import OTAMeshDevices

extension PushTarget {
    /// The push target a registry record names: its address (`HOST` or `HOST:PORT`, port 80
    /// by default), variant and last seen version.
    init(_ record: DeviceRecord) {
        let (host, port) = PushTarget.hostAndPort(record.address, defaultPort: 80)
        self.init(id: record.id, family: record.family, host: host, port: port, variant: record.variant, version: record.version)
    }
}
