#!/usr/bin/env python3
"""Browse _otamesh._tcp with python-zeroconf (an mDNS stack independent of Avahi), for the
discovery lab test. Usage: zeroconf-browse.py INTERFACE_ADDRESS SECONDS EXPECTED
Prints one JSON object: instance name -> {port, addresses, txt}. Runs only inside a lab namespace."""
import json, sys, time
from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf

address, seconds, expected = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
found = {}

class Listener(ServiceListener):
    def add_service(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=3000)
        if info:
            found[name] = {"port": info.port, "addresses": info.parsed_addresses(),
                           "txt": {k.decode(): (v.decode() if v is not None else "") for k, v in info.properties.items()}}
    update_service = add_service
    def remove_service(self, zc, type_, name):
        pass

zc = Zeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
ServiceBrowser(zc, "_otamesh._tcp.local.", Listener())
deadline = time.time() + seconds
while time.time() < deadline and len(found) < expected:
    time.sleep(0.1)
zc.close()
print(json.dumps(found, sort_keys=True))
