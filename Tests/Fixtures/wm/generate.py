#!/usr/bin/env python3
"""Generate WinnerMicro W800 (WM IoT SDK / W800 SDK) firmware-image test fixtures.

Python 3 standard library only (struct, zlib, lzma, gzip, json).  Run it from any
directory; it writes the fixtures and expected.json next to this script:

    python3 Tests/Fixtures/wm/generate.py

The images are built the way the vendor packers build them:

* WM IoT SDK  tools/wm/bin2img.py   (winnermicro/wm_iot_sdk)
    - 64-byte header, little endian, magic 0xA0FFFF9F
    - img_attr written as  <H img_type> <H compress_type>  (compress_type 1 = gzip,
      16 = xz), i.e. the gzip flag lands on img_attr bit 16 and xz on bit 20
      (wm_img_attr_t.compress_type, bits [21:20] == 1)
    - payload padded with 0xFF to a multiple of 4; img_len = padded length
    - org_checksum = CRC-32 (reflected, poly 0x04C11DB7, init 0xFFFFFFFF) with NO
      final XOR over the padded payload  ==  zlib.crc32(data) ^ 0xFFFFFFFF
    - hd_checksum  = the same CRC over header bytes [0, 60)
    - the xz "_ota.img" is bin2img.py run on the *full .img* (header + payload) with
      --compress-type 16: outer header + xz stream (LZMA2 preset 9|EXTREME,
      dict_size 32 KiB, check CRC32) padded with 0xFF to 4 bytes.
* W800 SDK   tools/w800/wm_tool.c + tools/w800/rules.mk  (legacy gzip "_ota.img")
    - same 64-byte header; wm_tool -fc 1 gzips the full .img, writes zip_type = 1
      (img_attr bit 16), pads the gzip stream with 0x00 to 4 bytes.

Everything is deterministic: fixed payload, fixed header fields, gzip mtime = 0.
(The xz bytes depend on the liblzma version, but the script recomputes every length
and checksum it records, so expected.json always matches the files it wrote.)
"""

import gzip
import json
import lzma
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

MAGIC = 0xA0FFFF9F
HEADER_SIZE = 64          # OTA_FW_HEADER_SIZE_IN_BIN (0x40)
HEADER_CRC_LEN = 60       # sizeof(wm_ota_header_t) - 4

# img_attr values as bin2img.py / wm_tool.c produce them
IMG_TYPE_APP = 1                 # IMG_TYPE_FLASHBIN0 / "--image-type 1"
BIN2IMG_COMPRESS_NONE = 0
BIN2IMG_COMPRESS_GZIP = 1        # -> img_attr bit 16 (gzip_enable / zip_type)
BIN2IMG_COMPRESS_XZ = 1 << 4     # -> img_attr bit 20 (compress_type = 1, xz)

# Addresses of the default WM IoT SDK OTA partition table
# (app @ 0xF000, app_ota @ 0x131000, flash mapped at 0x08000000, run = header + 0x400)
APP_HEADER_ADDR = 0x0800F000
APP_RUN_ADDR = 0x0800F400
APP_OTA_ADDR = 0x08131000

VERSION = "G01.02.03"
UPD_NO = 0
# bootloader config flags word at 0x30 (WM IoT SDK): log_level:3 | skip_esc_check<<3 |
# skip_upgrade_check<<4 | skip_integrity_check<<5   (tools/cmake/target.w80x.cmake)
BOOT_FLAGS_INNER = 0x00000002    # log_level = 2, no skips
BOOT_FLAGS_OUTER = 0x00000000    # the _ota.img rule passes no --bootloader-config-flags


def wm_crc32(data: bytes) -> int:
    """CRC-32/JAMCRC: reflected 0xEDB88320, init 0xFFFFFFFF, no final XOR."""
    return zlib.crc32(data) ^ 0xFFFFFFFF


assert wm_crc32(b"123456789") == 0x340BC6D9


def payload_bytes(n: int = 8192) -> bytes:
    """8 KiB of patterned, partly pseudo-random data (deterministic)."""
    out = bytearray()
    x = 0x12345678
    for i in range(n):
        if (i // 512) % 2 == 0:
            out.append((i * 7 + (i >> 8)) & 0xFF)          # ramp pattern
        else:
            x = (1103515245 * x + 12345) & 0x7FFFFFFF      # LCG noise
            out.append((x >> 16) & 0xFF)
    return bytes(out)


def version_field(version: str) -> bytes:
    # bin2img.py: pad with NUL to 16, or truncate to 15 chars + NUL
    if len(version) < 16:
        v = version + "\0" * (16 - len(version))
    else:
        v = version[:15] + "\0"
    return v.encode("utf-8")


def pack_header(img_type, compress_type, img_addr, img_len, img_header_addr,
                upgrade_img_addr, org_checksum, upd_no, version, boot_flags,
                reserved1=0, next_hdr=0, magic=MAGIC, hd_checksum=None) -> bytes:
    head = struct.pack("<IHHIIIIII16sIII", magic, img_type, compress_type, img_addr,
                       img_len, img_header_addr, upgrade_img_addr, org_checksum,
                       upd_no, version_field(version), boot_flags, reserved1, next_hdr)
    assert len(head) == HEADER_CRC_LEN
    if hd_checksum is None:
        hd_checksum = wm_crc32(head)
    return head + struct.pack("<I", hd_checksum)


def bin2img(data: bytes, compress_type: int, boot_flags: int, pad_byte: int = 0xFF) -> bytes:
    """Mirror of wm_iot_sdk tools/wm/bin2img.py main() (and wm_tool.c for gzip)."""
    if compress_type == BIN2IMG_COMPRESS_XZ:
        filters = [{"id": lzma.FILTER_LZMA2,
                    "preset": 9 | lzma.PRESET_EXTREME,
                    "dict_size": 1 << 15}]
        data = lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                             filters=filters)
    elif compress_type == BIN2IMG_COMPRESS_GZIP:
        data = gzip.compress(data, compresslevel=9, mtime=0)
    if len(data) % 4:
        data += bytes([pad_byte]) * (4 - len(data) % 4)
    header = pack_header(IMG_TYPE_APP, compress_type, APP_RUN_ADDR, len(data),
                         APP_HEADER_ADDR, APP_OTA_ADDR, wm_crc32(data), UPD_NO,
                         VERSION, boot_flags)
    return header + data


def rewrite_header(image: bytes, **changes) -> bytes:
    """Change header fields and recompute hd_checksum (unless hd_checksum given)."""
    f = list(struct.unpack_from("<IHHIIIIII16sIIII", image, 0))
    names = ["magic", "img_type", "compress_type", "img_addr", "img_len",
             "img_header_addr", "upgrade_img_addr", "org_checksum", "upd_no",
             "ver", "boot_flags", "reserved1", "next_hdr", "hd_checksum"]
    for k, v in changes.items():
        f[names.index(k)] = v
    head = struct.pack("<IHHIIIIII16sIII", *f[:13])
    hd = changes.get("hd_checksum", wm_crc32(head))
    return head + struct.pack("<I", hd) + image[HEADER_SIZE:]


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[offset] ^= mask
    return bytes(b)


def describe(image: bytes) -> dict:
    """Fields recorded in expected.json (read back from the bytes)."""
    if len(image) < HEADER_SIZE:
        return {"version": None, "imgLen": None, "orgChecksum": None, "updNo": None,
                "imgAttr": None, "hdChecksum": None}
    (magic, attr, img_addr, img_len, hdr_addr, upd_addr, org, upd_no, ver,
     flags, res1, nxt, hd) = struct.unpack_from("<IIIIIIII16sIIII", image, 0)
    return {
        "version": ver.split(b"\0", 1)[0].decode("ascii"),
        "imgLen": img_len,
        "orgChecksum": org,
        "updNo": upd_no,
        "imgAttr": attr,
        "hdChecksum": hd,
        "magic": magic,
        "imgAddr": img_addr,
        "imgHeaderAddr": hdr_addr,
        "upgradeImgAddr": upd_addr,
        "bootFlags": flags,
    }


def main():
    payload = payload_bytes()
    full = bin2img(payload, BIN2IMG_COMPRESS_NONE, BOOT_FLAGS_INNER)
    ota_xz = bin2img(full, BIN2IMG_COMPRESS_XZ, BOOT_FLAGS_OUTER)
    ota_gz = bin2img(full, BIN2IMG_COMPRESS_GZIP, BOOT_FLAGS_OUTER, pad_byte=0x00)

    xz_len = len(ota_xz) - HEADER_SIZE
    files = {}
    notes = {}

    def add(name, data, valid, compressed, compression, reason="", inner=None):
        files[name] = data
        entry = {"valid": valid, "compressed": compressed, "compression": compression}
        entry.update(describe(data))
        entry["fileSize"] = len(data)
        entry["signature"] = False
        entry["reason"] = reason
        if inner is not None:
            entry["inner"] = inner
        notes[name] = entry

    inner_desc = describe(full)
    inner_desc.update({"fileSize": len(full), "payloadSize": len(payload),
                       "valid": True})

    # --- valid images -------------------------------------------------------
    add("w800_app.img", full, True, False, "none")
    add("w800_app_ota.img", ota_xz, True, True, "xz", inner=inner_desc)
    add("w800_legacy_gz_ota.img", ota_gz, True, True, "gzip",
        reason="valid legacy W800 SDK (wm_tool -fc 1) gzip OTA image; the WM IoT SDK "
               "wm_ota_ops_check_header() rejects gzip_enable != 0, so accept it only "
               "if the legacy W800 SDK format is supported", inner=inner_desc)

    # Padding case: a payload whose length is not a multiple of 4, so bin2img pads the
    # inner image with 0xFF (the padding is inside img_len and the CRC).  An .xz stream
    # is always a multiple of 4 bytes long (xz format: block, index and footer are
    # 4-byte aligned), so the outer 0xFF padding of an xz _ota.img is always empty;
    # the gzip variant can carry 1..3 pad bytes (0x00 from wm_tool.c).
    n = 8190
    odd_full = bin2img(payload[:n], BIN2IMG_COMPRESS_NONE, BOOT_FLAGS_INNER)
    odd_ota = bin2img(odd_full, BIN2IMG_COMPRESS_XZ, BOOT_FLAGS_OUTER)
    assert (len(odd_ota) - HEADER_SIZE) % 4 == 0
    odd_desc = describe(odd_full)
    odd_desc.update({"fileSize": len(odd_full), "payloadSize": n, "valid": True,
                     "innerPadBytes": 4 - n % 4})
    add("w800_app_odd_ota.img", odd_ota, True, True, "xz",
        reason="valid; inner payload of %d bytes padded with %d x 0xFF to img_len %d"
               % (n, 4 - n % 4, n + 4 - n % 4), inner=odd_desc)
    odd_inner = odd_full

    # --- tampered twins ------------------------------------------------------
    add("w800_app_bad_hd_checksum.img",
        rewrite_header(full, hd_checksum=inner_desc["hdChecksum"] ^ 0x00000001),
        False, False, "none",
        reason="hd_checksum does not match CRC over header bytes 0..59")

    add("w800_app_bad_payload_checksum.img", flip(full, HEADER_SIZE + 4096, 0x80),
        False, False, "none",
        reason="payload byte 4096 flipped: CRC over the img_len payload bytes != org_checksum "
               "(header itself is intact)")

    add("w800_app_truncated.img", full[:HEADER_SIZE + 4000], False, False, "none",
        reason="file holds 4000 payload bytes but img_len says 8192")

    add("w800_app_truncated_header.img", full[:40], False, False, "none",
        reason="file shorter than the 64-byte header")

    add("w800_app_huge_img_len.img", rewrite_header(full, img_len=0xFFFFFFF0),
        False, False, "none",
        reason="img_len = 0xFFFFFFF0 exceeds the file size (hd_checksum recomputed, so "
               "only the length is wrong)")

    add("w800_app_wrong_magic.img", rewrite_header(full, magic=0xA0FFFF9E),
        False, False, "none",
        reason="magic 0xA0FFFF9E != 0xA0FFFF9F (hd_checksum recomputed, so only the "
               "magic is wrong)")

    # xz stream corrupted in the middle of the LZMA2 data, with org_checksum and
    # hd_checksum recomputed so only decompression / the xz CRC32 catches it.
    corrupt = bytearray(ota_xz)
    mid = HEADER_SIZE + xz_len // 2
    corrupt[mid] ^= 0xFF
    corrupt = bytes(corrupt)
    corrupt = rewrite_header(corrupt, org_checksum=wm_crc32(corrupt[HEADER_SIZE:]))
    add("w800_app_ota_xz_corrupted.img", corrupt, False, True, "xz",
        reason="xz stream byte flipped; outer org_checksum/hd_checksum recomputed so the "
               "outer header verifies, but xz decoding fails (LZMA data error or xz "
               "CRC32 check mismatch)")

    # valid outer image whose decompressed inner image has a bad payload CRC
    bad_inner = flip(full, HEADER_SIZE + 100, 0x01)
    ota_bad_inner = bin2img(bad_inner, BIN2IMG_COMPRESS_XZ, BOOT_FLAGS_OUTER)
    bi = describe(bad_inner)
    bi.update({"fileSize": len(bad_inner), "payloadSize": len(payload), "valid": False})
    add("w800_app_ota_inner_bad_checksum.img", ota_bad_inner, False, True, "xz",
        reason="outer header, outer CRC and xz stream are all fine, but the decompressed "
               "inner image's payload CRC != inner org_checksum (the bootloader would "
               "reject it)", inner=bi)

    add("w800_app_ota_truncated.img", ota_xz[:HEADER_SIZE + xz_len // 2], False, True, "xz",
        reason="compressed OTA image cut in half: file shorter than 64 + img_len")

    for name, data in files.items():
        with open(os.path.join(HERE, name), "wb") as fh:
            fh.write(data)
    with open(os.path.join(HERE, "payload.bin"), "wb") as fh:
        fh.write(payload)
    with open(os.path.join(HERE, "expected.json"), "w") as fh:
        json.dump(notes, fh, indent=2, sort_keys=True)
        fh.write("\n")

    # self-check: the valid ones really verify
    for name, e in notes.items():
        data = files[name]
        ok = (len(data) >= HEADER_SIZE
              and struct.unpack_from("<I", data, 0)[0] == MAGIC
              and wm_crc32(data[:HEADER_CRC_LEN]) == struct.unpack_from("<I", data, 60)[0]
              and e["imgLen"] <= len(data) - HEADER_SIZE
              and wm_crc32(data[HEADER_SIZE:HEADER_SIZE + e["imgLen"]]) == e["orgChecksum"])
        if ok and e["compression"] == "xz":
            try:
                d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
                inner = d.decompress(data[HEADER_SIZE:HEADER_SIZE + e["imgLen"]])
                assert d.eof and len(d.unused_data) < 4   # 0..3 bytes of 0xFF padding
            except lzma.LZMAError:
                inner = None
            want = {"w800_app_ota_inner_bad_checksum.img": bad_inner,
                    "w800_app_odd_ota.img": odd_inner}.get(name, full)
            ok = inner is not None and inner == want
            if ok:
                il = struct.unpack_from("<I", inner, 12)[0]
                ok = wm_crc32(inner[HEADER_SIZE:HEADER_SIZE + il]) == struct.unpack_from("<I", inner, 24)[0]
        if ok and e["compression"] == "gzip":
            d = zlib.decompressobj(wbits=31)                # gzip wrapper
            ok = d.decompress(data[HEADER_SIZE:HEADER_SIZE + e["imgLen"]]) == full and d.eof
        assert ok == e["valid"], (name, ok, e["valid"])
    print("wrote %d fixtures to %s" % (len(files), HERE))


if __name__ == "__main__":
    main()
