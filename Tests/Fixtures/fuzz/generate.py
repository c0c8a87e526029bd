#!/usr/bin/env python3
"""Writes the file-based seed corpora of the fuzz targets (Sources/OTAMeshFuzz/FuzzTargets.swift)
from the other fixtures: Tests/Fixtures/fuzz/<target>/seed-*. Seeds the Swift code must make
(sealed gossip packets, signed commands, rollout records) come from the OTAMeshFuzzTests test
`generatedSeeds` (OTAMESH_FUZZ_WRITE_SEEDS=1 swift test --filter FuzzCorpusTests). Reproducers a fuzz run found are kept
beside them as crash-*/finding-* and never rewritten here. Run from the repository root:

    python3 Tests/Fixtures/fuzz/generate.py
"""
import base64
import io
import json
import lzma
import os
import struct
import tarfile

ROOT = "Tests/Fixtures"
OUT = os.path.join(ROOT, "fuzz")


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def write(target, name, data):
    directory = os.path.join(OUT, target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, "seed-" + name), "wb") as f:
        f.write(data)


def u16(n):
    return struct.pack(">H", n)


def chunk(data):
    """FuzzInput.chunk(): one length byte, then the bytes."""
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 256
    return bytes([len(data)]) + data


def chunk16(data):
    return u16(len(data)) + data


# image: first byte picks the format (0: detect, 1 esp32-app, 2 esp8266, 3 wm-ota, 4 mcuboot, 5 raw).
for name, fmt in [("esp/esp8266-v1-0x00000.bin", 0), ("esp/esp8266-v1-0x10000.bin", 2), ("esp/esp32.trunc.bin", 0),
                  ("esp/esp32c3.trunc.bin", 1), ("wm/w800_app_ota.img", 0), ("wm/w800_app_truncated_header.img", 3),
                  ("wm/w800_legacy_gz_ota.img", 0), ("mcuboot/ed25519.bin", 0), ("mcuboot/ed25519_seccnt_tlv_truncated.bin", 4)]:
    write("image", os.path.basename(name), bytes([fmt]) + read(name))
write("image", "raw", b"\x05not firmware")

# xz: two bytes where the streamed decode splits, then an xz stream.
text = b"otamesh fuzz seed " * 20
for check, name in [(lzma.CHECK_CRC32, "crc32"), (lzma.CHECK_CRC64, "crc64"), (lzma.CHECK_SHA256, "sha256"), (lzma.CHECK_NONE, "none")]:
    write("xz", name, u16(40) + lzma.compress(text, format=lzma.FORMAT_XZ, check=check))
write("xz", "bcj", u16(3) + lzma.compress(bytes(range(256)) * 4, format=lzma.FORMAT_XZ,
                                           filters=[{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "preset": 1}]))
write("xz", "concatenated", u16(0) + lzma.compress(b"a") + lzma.compress(b"b"))

# device-routes: `METHOD TARGET [TLS]`, then header lines.
requests = {
    "blob": "GET /v1/blobs/sha256/" + "ab" * 32,
    "blob-range": "GET /v1/blobs/sha256/" + "ab" * 32 + "\nrange: bytes=0-99,200-\nif-range: \"" + "ab" * 32 + "\"",
    "blob-suffix": "HEAD /v1/blobs/sha256/" + "AB" * 32 + "\nRange: bytes=-10",
    "target": "GET /v1/targets/esp32/app/2.0.0.bin?device=AA:BB:CC:DD:EE:FF\nrange: bytes=5-\nif-range: Sun, 06 Nov 1994 08:49:37 GMT",
    "manifest": "GET /v1/devices/aa:bb:cc:dd:ee:ff/update?hardware=esp32&version=1.0.0\nhost: 127.0.0.1:8070",
    "https-ota": "GET /v1/devices/aa%3Abb%3Acc%3Add%3Aee%3Aff/firmware TLS\nrange: bytes=0-1000\nhost: 127.0.0.1:8443",
    "esp32-httpupdate": "GET /v1/esp/update?x=1\nuser-agent: ESP32-http-Update\nx-esp32-sta-mac: AA:BB:CC:DD:EE:FF\n"
                        "x-esp32-ap-mac: AA:BB:CC:DD:EE:FE\nx-esp32-free-space: 1310720\nx-esp32-sketch-size: 900000\n"
                        "x-esp32-sketch-md5: " + "00" * 16 + "\nx-esp32-sketch-sha256: " + "11" * 32 + "\nx-esp32-chip-size: 4194304\n"
                        "x-esp32-sdk-version: v4.4\nx-esp32-mode: sketch\nx-esp32-version: 1.0.0",
    "esp8266-httpupdate": "GET /v1/esp/update\nuser-agent: ESP8266-http-Update\nx-esp8266-sta-mac: 18:FE:34:00:00:01\n"
                          "x-esp8266-ap-mac: 1A:FE:34:00:00:01\nx-esp8266-free-space: 600000\nx-esp8266-sketch-size: 300000\n"
                          "x-esp8266-sketch-md5: " + "cd" * 16 + "\nx-esp8266-chip-size: 4194304\nx-esp8266-sdk-version: 2.2.2\n"
                          "x-esp8266-mode: sketch\nx-esp8266-version: 1.0.0",
    "fota": "GET /v1/fota/fota-1/user2.bin\nrange: bytes=0-",
    "wiphone": "GET /v1/wiphone/phone-1/WiPhone-phone.ini?version=1.0.0\nhost: gw.local:8443",
    "wiphone-anon": "HEAD /v1/wiphone/WiPhone-phone.ini",
    "tuf": "GET /v1/tuf/1.root.json",
    "post": "POST /v1/esp/update",
}
for name, text in requests.items():
    write("device-routes", name, text)

# tuf-metadata: first byte picks the parser (0 root … 4 envelope), 5 the update chain.
basic = "tuf/basic/server/metadata/"
write("tuf-metadata", "root", b"\x00" + read(basic + "1.root.json"))
write("tuf-metadata", "timestamp", b"\x01" + read(basic + "timestamp.json"))
write("tuf-metadata", "snapshot", b"\x02" + read(basic + "1.snapshot.json"))
write("tuf-metadata", "targets", b"\x03" + read(basic + "1.targets.json"))
write("tuf-metadata", "delegated", b"\x03" + read("tuf/delegations/server/metadata/1.esp32-role.json"))
write("tuf-metadata", "envelope", b"\x04" + read("tuf/delegations/server/metadata/1.targets.json"))
write("tuf-metadata", "chain", b"\x05" + b"".join(chunk16(read(basic + name))
                                                  for name in ["1.root.json", "timestamp.json", "1.snapshot.json", "1.targets.json"]))

# canonical-json: the canonical-JSON vectors' inputs, and metadata as served.
vectors = json.loads(read("tuf/canonical.json"))
for index, vector in enumerate(vectors[:24]):
    write("canonical-json", "vector-%02d" % index, base64.b64decode(vector["canonical_b64"]))
write("canonical-json", "unicode", '{"b":"\\u00e9\\ud83d\\ude00","a":[1,-2,0,true,false,null],"\\u0000":"x"}')
write("canonical-json", "timestamp", read(basic + "timestamp.json"))

# config-yaml: the agent config; first byte >= 0x80: the site keyring file.
write("config-yaml", "packaged", read("../../packaging/otamesh.yaml"))
write("config-yaml", "full", """nodeName: gw-floor2
dataDir: /var/lib/otamesh
admin:
  listen: 127.0.0.1:8071
  idleTimeout: 1m
device:
  listen: 0.0.0.0:8070
  tlsListen: "off"
cache:
  quota: 512MiB
  partialMaxAge: 12h
gossip:
  listen: 127.0.0.1:7946
  join: [10.0.2.11:7946, "[::1]:7946"]
push:
  maxConcurrent: 8
  retryTimeout: 30s,arduino-ota=2m
  deadline: 10m,fetch-url=20m
upstream:
  metadataURL: http://127.0.0.1:8000/metadata
  targets: "esp32/*,w800/*"
log:
  level: debug
  format: json
devices:
  admission: known
""")
write("config-yaml", "keyring", b"\x80" + json.dumps({"site": "site-1", "keys": [base64.b64encode(bytes(range(32))).decode()]}).encode())

# topology: the shipped topologies and the lab fixture.
for name in ["two-gateways.yaml", "three-floors.yaml", "three-floors-rollout.yaml"]:
    with open(os.path.join("Topologies", name), "rb") as f:
        write("topology", name, f.read())
write("topology", "mesh-faults.yaml", read("lab/mesh-faults.yaml"))

# arduino-ota: setup byte (bit 0 esphome, bit 1 password), then events: clock byte, op byte, payload.
def ota(setup, events):
    return bytes([setup]) + b"".join(events)

ev_started = b"\x00\x00"
ev_read = b"\x00\x01" + u16(1000) + b"\x00"
ev_listen = b"\x00\x03" + u16(4321)
def ev_datagram(data): return b"\x01\x04" + chunk(data)
ev_connected = b"\x00\x05"
def ev_received(data): return b"\x00\x06" + chunk(data)
ev_sending = b"\x00\x07"
ev_sent = b"\x00\x08"
def ev_version(v): return b"\x04\x0b" + chunk(v) + b"\x00"
ev_tick = b"\x28\x0d"
write("arduino-ota", "arduino", ota(0, [ev_started, ev_read, ev_listen, ev_datagram(b"OK"), ev_connected, ev_sending,
                                        ev_received(b"1460"), ev_sent, ev_received(b"1000OK"), ev_tick, ev_version(b"2.0.0")]))
write("arduino-ota", "arduino-auth", ota(2, [ev_started, ev_read, ev_listen, ev_datagram(b"AUTH " + b"a1" * 16), ev_datagram(b"OK"),
                                             ev_connected, ev_sending, ev_sent, ev_received(b"ERROR: flash"), ev_tick]))
write("arduino-ota", "esphome", ota(1, [ev_started, ev_read, ev_connected, ev_received(b"\x00\x01"), ev_received(bytes([64, 65])),
                                        ev_received(bytes([66])), ev_received(bytes([67])), ev_sending, ev_sent,
                                        ev_received(bytes([68])), ev_received(bytes([69])), ev_tick, ev_version(b"2.0.0")]))
write("arduino-ota", "esphome-auth", ota(3, [ev_started, ev_read, ev_connected, ev_received(b"\x00\x02"), ev_received(bytes([1]) + b"n" * 32),
                                             ev_received(bytes([65])), ev_received(bytes([130]))]))

# projectmm-status: /api/state answers.
write("projectmm-status", "idle", '{"modules":[{"name":"FirmwareUpdate","type":"FirmwareUpdateModule","status":"idle","controls":['
      '{"name":"version","type":"display","value":"1.4.0"},{"name":"firmware","type":"display","value":"esp32-eth"}]}]}')
write("projectmm-status", "downloading", '{"modules":[{"name":"System","type":"SystemModule","controls":[{"name":"firmware","type":"display",'
      '"value":"esp32-eth"}]},{"name":"FirmwareUpdate","type":"FirmwareUpdateModule","status":"downloading","controls":['
      '{"name":"update_pct","type":"progress","value":51200,"max":1048576},{"name":"version","value":"1.4.0"}]}]}')
write("projectmm-status", "error", '{"modules":[{"name":"F","type":"FirmwareUpdateModule","status":"error: http 404","controls":[]}]}')

# http-upload-answer: setup byte (bit 0 ElegantOTA 3, bit 1 password), then events (clock, op, payload).
def up(setup, events):
    return bytes([setup]) + b"".join(events)
write("http-upload-answer", "update-server", up(0, [b"\x00\x00", b"\x00\x03", b"\x00\x04", b"\x00\x05\x00" + chunk("Update Success! Rebooting..."),
                                                   b"\x28\x09", b"\x00\x07" + chunk('{"version":"2.0.0"}')]))
write("http-upload-answer", "elegantota", up(1, [b"\x00\x00", b"\x00\x01\x00" + chunk("OK"), b"\x00\x03", b"\x00\x04",
                                                b"\x00\x05\x00" + chunk("OK"), b"\x28\x09", b"\x00\x08" + chunk("refused"), b"\x28\x09",
                                                b"\x00\x07" + chunk("2.0.0\n")]))
write("http-upload-answer", "unauthorized", up(2, [b"\x00\x00", b"\x00\x03", b"\x00\x05\x06" + chunk("401 Unauthorized")]))
write("http-upload-answer", "version-json", '{"id":"text_sensor-version","state":"1.4.0","value":"1.4.0"}')

# bundle-tar: ustar archives as `otamesh bundle export` writes them.
def tar(entries):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()
write("bundle-tar", "bundle.tar", tar([("metadata/root.json", read(basic + "1.root.json")),
                                       ("metadata/timestamp.json", read(basic + "timestamp.json")),
                                       ("targets/esp32/app.bin", b"\xe9" + b"\x00" * 31),
                                       ("targets.list", b"esp32/app.bin\n")]))
write("bundle-tar", "long-path.tar", tar([("targets/" + "d" * 120 + "/" + "f" * 90, b"x")]))

# mdns-txt: service type byte (0 _arduino, 1 _esphomelib, 2 _http), port (2 bytes), TXT chunk, probe answer body.
def txt(pairs):
    return b"".join(bytes([len(p)]) + p for p in (s.encode() for s in pairs))
def mdns(kind, port, pairs, body=b""):
    return bytes([kind]) + u16(port) + chunk(txt(pairs)) + body
write("mdns-txt", "gateway", mdns(2, 8070, ["id=gw-floor2", "v=1", "site=3f2a9c1b5d7e8f90", "gp=7946", "hp=8070", "addr=10.0.2.11,fd00::11"]))
write("mdns-txt", "arduino", mdns(0, 3232, ["board=esp32dev", "auth_upload=yes", "version=3.2.1", "http_port=8080"], b"3.2.1\n"))
write("mdns-txt", "esphome", mdns(1, 6053, ["version=2024.6.0", "mac=aabbccddeeff", "platform=ESP32", "board=esp32dev",
                                            "project_version=1.2.0"]))
write("mdns-txt", "projectmm", mdns(2, 10000, [], b'{"modules":[{"name":"FirmwareUpdate","type":"FirmwareUpdateModule","status":"idle",'
                                              b'"controls":[{"name":"version","value":"1.4.0"},{"name":"firmware","value":"esp32"}]}]}'))
write("mdns-txt", "upload-form", mdns(2, 80, ["path=/"], b"<form method='POST' action='/update' enctype='multipart/form-data'>"
                                                         b"<input type='file' name='update'></form>"))

# filesystem-image: byte 0 (bit 0) picks LittleFS or SPIFFS, byte 1 the block/page size (128 or 64 << n), then the image.
write("filesystem-image", "littlefs-512", bytes([1, 2]) + read("littlefs/python-512x64.img"))
write("filesystem-image", "spiffs-small-page", bytes([0, 1]) + read("spiffs/small-page.bin")[:16384])

# app-catalog: a 2-byte length, a target's custom.app JSON, then a settings CSV.
APP = {
    "name": "weather-station",
    "properties": [
        {"prop": "ssid", "type": "text", "required": True, "pattern": "[a-z-]{1,32}"},
        {"prop": "password", "type": "password"},
        {"prop": "volume", "type": "number", "min": 0, "max": 21, "default": 4},
        {"prop": "units", "type": "select", "choices": ["metric", "imperial"]},
        {"prop": "debug", "type": "boolean", "default": False},
    ],
    "filesystem": {"type": "spiffs", "offset": "0x290000", "size": "0x20000"},
    "parts": [{"name": "bootloader", "target": "bl.bin", "offset": 4096}],
}
APP_JSON = json.dumps(APP).encode()
APP_CSV = b'device,app,ssid,volume,password\naa:01,weather-station@1.0.0,"lab-net",5,pw\naa:02,,x,30,\n'
write("app-catalog", "weather", struct.pack(">H", len(APP_JSON)) + APP_JSON + APP_CSV)

# ddi: byte 0 picks feedback (0), configData (1), a path (2) or an Authorization header (3).
write("ddi", "feedback-swupdate", b"\x00" + b'{ "id": 7, "time": "20261207T200036", "status": { "result": { "progress": { "cnt" : 1, "of" : 1 }, "finished": "none" }, "execution": "proceeding", "details" : [ "All Chunks Installed." ] } }')
write("ddi", "feedback-timestamp", b"\x00" + b'{"timestamp": 1627997501890, "status": {"execution": "closed", "result": {"finished": "failure"}, "code": 42, "details": ["disk full"]}}')
write("ddi", "config-data", b"\x01" + b'{"mode": "merge", "data": {"hardware": "hvac", "serialnumber": "8922673153", "rev": 2}}')
write("ddi", "path-feedback", b"\x02" + b"/DEFAULT/controller/v1/door-17/deploymentBase/1957729978/feedback")
write("ddi", "authorization", b"\x03" + b"TargetToken c6e81b0a0cda205c218fd32865b9ce5d")
