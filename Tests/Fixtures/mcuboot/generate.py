#!/usr/bin/env python3
"""Generate MCUboot image test fixtures with the real `imgtool` (pip install imgtool).

    python3 Tests/Fixtures/mcuboot/generate.py

Writes into this directory:
  * keys (test-only!): key_ed25519.pem, key_ecdsa-p256.pem, key_rsa-2048.pem
    (`imgtool keygen`; kept if they already exist so re-runs do not churn them)
  * payload.bin: 4 KiB patterned application binary
  * signed images (`imgtool sign -H 0x200 --pad-header -v 1.2.3+45 -S 0x20000`):
        <type>.bin            no security counter -> no protected TLV area
        <type>_seccnt.bin     --security-counter 7 -> protected TLV area (0x6908) with SEC_CNT
        unsigned.bin          no key -> SHA256 TLV only
  * tampered twins of the ed25519/ecdsa images
  * expected.json: per file {valid, version, signatureType, hasSecurityCounter,
    securityCounter, imgtoolVerify, ...}; imgtoolVerify is the captured output of
    `imgtool verify -k <key> <image>`.

ed25519 signatures are deterministic; ECDSA (random k) and RSA-PSS (random salt)
signatures change on every run, which is fine: the whole directory is regenerated
together and the SHA-256 digests (which do not depend on the signature) stay fixed.
"""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

VERSION = "1.2.3+45"
HEADER_SIZE = 0x200
SLOT_SIZE = 0x20000
SEC_CNT = 7

KEY_TYPES = ["ed25519", "ecdsa-p256", "rsa-2048"]

IMAGE_MAGIC = 0x96F3B83D
TLV_INFO_MAGIC = 0x6907
TLV_PROT_INFO_MAGIC = 0x6908
TLV_SHA256 = 0x10
TLV_SEC_CNT = 0x50
SIG_TLV = {"ed25519": 0x24, "ecdsa-p256": 0x22, "rsa-2048": 0x20}
TLV_NAMES = {0x01: "KEYHASH", 0x02: "PUBKEY", 0x10: "SHA256", 0x11: "SHA384",
             0x12: "SHA512", 0x20: "RSA2048_PSS", 0x21: "ECDSA224", 0x22: "ECDSA_SIG",
             0x23: "RSA3072_PSS", 0x24: "ED25519", 0x25: "SIG_PURE",
             0x30: "ENC_RSA2048", 0x31: "ENC_KW", 0x32: "ENC_EC256", 0x33: "ENC_X25519",
             0x34: "ENC_X25519_SHA512", 0x40: "DEPENDENCY", 0x50: "SEC_CNT",
             0x60: "BOOT_RECORD", 0x70: "DECOMP_SIZE", 0x71: "DECOMP_SHA",
             0x72: "DECOMP_SIGNATURE", 0x73: "COMP_DEC_SIZE", 0x74: "UUID_VID",
             0x75: "UUID_CID"}


def imgtool_cmd():
    exe = shutil.which("imgtool")
    return [exe] if exe else [sys.executable, "-m", "imgtool.main"]


def run(args, check=True):
    p = subprocess.run(imgtool_cmd() + args, cwd=HERE, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit("imgtool %s failed:\n%s%s" % (" ".join(args), p.stdout, p.stderr))
    return p


def payload_bytes(n=4096):
    out = bytearray()
    x = 0xC0FFEE
    for i in range(n):
        if (i // 256) % 2 == 0:
            out.append((i * 13 + 5) & 0xFF)
        else:
            x = (1103515245 * x + 12345) & 0x7FFFFFFF
            out.append((x >> 16) & 0xFF)
    return bytes(out)


def parse(data):
    """Independent parse of an MCUboot image (mirrors bootutil image.h / tlv.c)."""
    info = {"headerSize": None, "imgSize": None, "protectTlvSize": None,
            "flags": None, "loadAddr": None, "version": None, "tlvs": [],
            "computedSha256": None, "sha256Tlv": None, "securityCounter": None}
    if len(data) < 32:
        return info
    (magic, load, hdr_sz, prot_sz, img_sz, flags, maj, mnr, rev, build,
     _pad) = struct.unpack_from("<IIHHIIBBHII", data, 0)
    info.update({"magic": magic, "loadAddr": load, "headerSize": hdr_sz,
                 "protectTlvSize": prot_sz, "imgSize": img_sz, "flags": flags,
                 "version": "%d.%d.%d+%d" % (maj, mnr, rev, build)})
    off = hdr_sz + img_sz
    hashed_end = off + prot_sz
    if hashed_end <= len(data):
        info["computedSha256"] = hashlib.sha256(data[:hashed_end]).hexdigest()
    tlvs = []
    for expect in ((TLV_PROT_INFO_MAGIC,) if prot_sz else ()) + (TLV_INFO_MAGIC,):
        if off + 4 > len(data):
            break
        m, tot = struct.unpack_from("<HH", data, off)
        if m != expect:
            break
        end, p = off + tot, off + 4
        while p + 4 <= min(end, len(data)):
            t, ln = struct.unpack_from("<HH", data, p)
            val = data[p + 4:p + 4 + ln]
            tlvs.append({"area": "protected" if m == TLV_PROT_INFO_MAGIC else "unprotected",
                         "type": t, "name": TLV_NAMES.get(t, "0x%04x" % t), "len": ln,
                         "complete": len(val) == ln})
            if t == TLV_SHA256 and len(val) == ln:
                info["sha256Tlv"] = val.hex()
            if t == TLV_SEC_CNT and ln == 4 and len(val) == 4:
                info["securityCounter"] = struct.unpack("<I", val)[0]
            p += 4 + ln
        off = end
    info["tlvs"] = tlvs
    info["fileSize"] = len(data)
    return info


def main():
    os.makedirs(HERE, exist_ok=True)
    payload = payload_bytes()
    with open(os.path.join(HERE, "payload.bin"), "wb") as fh:
        fh.write(payload)

    for kt in KEY_TYPES:
        key = "key_%s.pem" % kt
        if not os.path.exists(os.path.join(HERE, key)):
            run(["keygen", "-k", key, "-t", kt])

    base = ["sign", "-H", str(HEADER_SIZE), "--pad-header", "-v", VERSION,
            "-S", str(SLOT_SIZE), "--align", "4"]
    images = {}     # name -> (key type or None, has_sec_cnt, valid, reason)

    for kt in KEY_TYPES:
        key = "key_%s.pem" % kt
        run(base + ["-k", key, "payload.bin", "%s.bin" % kt])
        images["%s.bin" % kt] = (kt, False, True, "")
        run(base + ["-k", key, "-s", str(SEC_CNT), "payload.bin", "%s_seccnt.bin" % kt])
        images["%s_seccnt.bin" % kt] = (kt, True, True, "")
    run(base + ["payload.bin", "unsigned.bin"])
    images["unsigned.bin"] = (None, False, True,
                              "valid but unsigned: only the SHA256 TLV (integrity, no "
                              "authenticity); a gateway requiring signatures must reject it")

    def read(name):
        with open(os.path.join(HERE, name), "rb") as fh:
            return bytearray(fh.read())

    def write(name, data):
        with open(os.path.join(HERE, name), "wb") as fh:
            fh.write(bytes(data))

    # payload byte flipped -> SHA256 TLV mismatch
    for kt in ("ed25519", "ecdsa-p256"):
        d = read("%s_seccnt.bin" % kt)
        d[HEADER_SIZE + 1000] ^= 0x01
        write("%s_seccnt_payload_flipped.bin" % kt, d)
        images["%s_seccnt_payload_flipped.bin" % kt] = (
            kt, True, False, "payload byte 1000 flipped: SHA-256 over header+body+protected "
                             "TLVs no longer equals the SHA256 TLV")

    # protected TLV (security counter) changed 7 -> 8 without re-signing
    d = read("ed25519_seccnt.bin")
    info = parse(bytes(d))
    sc_off = info["headerSize"] + info["imgSize"] + 4 + 4   # prot info hdr + TLV hdr
    assert struct.unpack_from("<HH", d, sc_off - 4) == (TLV_SEC_CNT, 4)
    struct.pack_into("<I", d, sc_off, SEC_CNT + 1)
    write("ed25519_seccnt_sec_cnt_tampered.bin", d)
    images["ed25519_seccnt_sec_cnt_tampered.bin"] = (
        "ed25519", True, False, "SEC_CNT value in the protected TLV area changed 7 -> 8: the "
                                "protected area is covered by the SHA-256, so the hash fails")

    # signature byte flipped (unprotected area is not hashed -> hash ok, signature bad)
    d = read("ed25519.bin")
    info = parse(bytes(d))
    tlv_off = info["headerSize"] + info["imgSize"]
    tot = struct.unpack_from("<HH", d, tlv_off)[1]
    d[tlv_off + tot - 10] ^= 0x01          # inside the 64-byte ED25519 signature (last TLV)
    write("ed25519_sig_flipped.bin", d)
    images["ed25519_sig_flipped.bin"] = (
        "ed25519", False, False, "byte inside the ED25519 signature TLV flipped: SHA256 TLV still "
                                 "matches (the unprotected TLV area is not hashed) but the "
                                 "signature does not verify")

    # TLV area truncated (file cut 20 bytes before the end of the TLV area)
    for src in ("ed25519_seccnt.bin", "rsa-2048.bin"):
        d = read(src)
        info = parse(bytes(d))
        end = info["headerSize"] + info["imgSize"] + info["protectTlvSize"]
        end += struct.unpack_from("<HH", d, end)[1]
        assert end == len(d), (src, end, len(d))
        name = src.replace(".bin", "_tlv_truncated.bin")
        write(name, d[:end - 20])
        images[name] = (images[src][0], images[src][1], False,
                        "file cut 20 bytes before the end of the unprotected TLV area: "
                        "it_tlv_tot points past EOF, the signature TLV is incomplete")

    # wrong magic
    d = read("ed25519.bin")
    struct.pack_into("<I", d, 0, 0x96F3B83C)          # IMAGE_MAGIC_V1, not accepted
    write("ed25519_wrong_magic.bin", d)
    images["ed25519_wrong_magic.bin"] = (
        "ed25519", False, False, "ih_magic = 0x96f3b83c (IMAGE_MAGIC_V1) instead of 0x96f3b83d")

    expected = {}
    for name, (kt, has_sc, valid, reason) in sorted(images.items()):
        key = "key_%s.pem" % kt if kt else None
        p = run(["verify"] + (["-k", key] if key else []) + [name], check=False)
        out = (p.stdout + p.stderr).strip()
        if p.returncode != 0 and "Traceback" in out:
            out = "exit %d: %s" % (p.returncode, out.splitlines()[-1])
        info = parse(bytes(read(name)))
        entry = {
            "valid": valid,
            "version": VERSION,
            "signatureType": kt,
            "hasSecurityCounter": has_sc,
            "securityCounter": info["securityCounter"] if has_sc else None,
            "imgtoolVerify": out,
            "imgtoolVerifyExitCode": p.returncode,
            "verifyKey": key,
            "headerSize": info["headerSize"],
            "imgSize": info["imgSize"],
            "protectTlvSize": info["protectTlvSize"],
            "flags": info["flags"],
            "fileSize": info["fileSize"],
            "sha256Tlv": info["sha256Tlv"],
            "computedSha256": info["computedSha256"],
            "tlvs": info["tlvs"],
            "reason": reason,
        }
        # sanity: imgtool agrees with our validity labels
        assert (p.returncode == 0) == valid, (name, out)
        expected[name] = entry

    with open(os.path.join(HERE, "expected.json"), "w") as fh:
        json.dump(expected, fh, indent=2, sort_keys=True)
        fh.write("\n")
    print("wrote %d images to %s" % (len(images), HERE))


if __name__ == "__main__":
    main()
