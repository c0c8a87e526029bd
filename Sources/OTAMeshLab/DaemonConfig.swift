import Foundation

/// Configuration files for the per-gateway D-Bus system bus and avahi-daemon.
public enum DaemonConfig {
    /// Where the system bus configuration is copied from.
    public static let systemBusConfig = "/usr/share/dbus-1/system.conf"

    /// Adapts the distribution's system bus configuration for one lab namespace: listens only on
    /// `socket`, stays in the foreground as root (no user switch, fork, pid file, syslog or
    /// service activation), resolves the relative `system.d` include, and drops the legacy and
    /// local includes, which could add listeners of their own. Service policies (avahi's) stay.
    public static func dbus(adapting system: String, socket: String) -> String {
        let dropped = [
            "<user>", "<fork/>", "<standard_system_servicedirs/>", "<servicehelper>", "<pidfile>", "<syslog/>",
            "/etc/dbus-1/system.conf", "system-local.conf", "if_selinux_enabled", "<servicedir>",
        ]
        var lines: [String] = []
        var listening = false
        for line in system.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if dropped.contains(where: line.contains) { continue }
            if line.contains("<listen>") {
                if !listening { lines.append("  <listen>unix:path=\(socket)</listen>") }
                listening = true
                continue
            }
            lines.append(
                line.replacingOccurrences(
                    of: "<includedir>system.d</includedir>",
                    with: "<includedir>/usr/share/dbus-1/system.d</includedir>"))
        }
        if !listening, let end = lines.lastIndex(where: { $0.contains("</busconfig>") }) {
            lines.insert("  <listen>unix:path=\(socket)</listen>", at: end)
        }
        return lines.joined(separator: "\n")
    }

    /// A minimal system bus configuration, for a machine without ``systemBusConfig``.
    public static func dbusMinimal(socket: String) -> String {
        """
        <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
         "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
        <busconfig>
          <type>system</type>
          <auth>EXTERNAL</auth>
          <listen>unix:path=\(socket)</listen>
          <policy context="default">
            <allow user="*"/>
            <allow own="*"/>
            <allow send_type="method_call"/>
            <allow send_type="signal"/>
            <allow send_requested_reply="true" send_type="method_return"/>
            <allow send_requested_reply="true" send_type="error"/>
            <allow receive_type="method_call"/>
            <allow receive_type="method_return"/>
            <allow receive_type="error"/>
            <allow receive_type="signal"/>
          </policy>
        </busconfig>

        """
    }

    /// avahi-daemon for one gateway namespace: only the lab interfaces, IPv4 only, D-Bus on,
    /// no wide-area or reflector, and the workstation record published so `avahi-browse -at`
    /// in one namespace shows the other gateways' hosts.
    public static func avahi(hostName: String, interfaces: [String]) -> String {
        """
        [server]
        host-name=\(hostName)
        domain-name=local
        use-ipv4=yes
        use-ipv6=no
        allow-interfaces=\(interfaces.joined(separator: ","))
        enable-dbus=yes
        ratelimit-interval-usec=1000000
        ratelimit-burst=1000

        [wide-area]
        enable-wide-area=no

        [publish]
        publish-workstation=yes
        publish-hinfo=no
        publish-aaaa-on-ipv4=no
        publish-a-on-ipv6=no

        [reflector]
        enable-reflector=no

        [rlimits]

        """
    }
}
