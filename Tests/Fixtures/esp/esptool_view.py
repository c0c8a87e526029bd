#!/usr/bin/env python3
"""Run `esptool image-info` on firmware images and print what it reports as JSON.

    python3 esptool_view.py [--chip CHIP] FILE...

Prints ONE JSON object keyed by each FILE argument (as given).  Exit status 0
even when images are invalid; 2 when esptool is not installed.  Without
--chip, esptool auto-detects the chip from the image header (exactly like
`esptool image-info FILE`).

Keys of each value (a key is present only when esptool printed it; the
summary keys "chip", "valid", "hashAppended", "esptoolError" and
"exitStatus" are always present):

  chip              esptool's chip id, lowercase ("esp32s3", "esp8266"), from
                    "Detected image type: ESP32-S3" (or --chip)
  valid             true iff esptool finished without error, printed
                    "Checksum: 0x.. (valid)" and, when a SHA-256 is appended,
                    "Validation hash: ... (valid)".  (esptool itself exits 0
                    for a bad checksum/hash: it only reports them.)
  imageSize         int, "Image size: N bytes" (file length)
  imageVersion      "Image version: N" (1 = 0xE9 image, 2 = ESP8266 0xEA)
  entryPoint        int, "Entry point: 0x..."
  segments          int, "Segments: N" (counts every segment esptool loaded,
                    including padding segments and the ESP8266 v2 irom0 one)
  flashSize, flashFreq, flashMode   strings as printed ("4MB", "80m", "DIO")
  chipId            int, extended header "Chip ID: N (...)"
  minChipRev, maxChipRev            "v0.0" style strings, minRevLegacy int
  segmentTable      [{"index", "length", "loadAddress", "fileOffset",
                    "memoryTypes": [..]}] from "Segments Information"
  checksumStored    int, "Checksum: 0xNN"
  checksumComputed  int, equals checksumStored when esptool says "valid",
                    else the "invalid - calculated 0xNN" value
  hashAppended      bool: a "Validation hash:" line was printed (esptool
                    prints it only when extended header byte 23 == 1); false
                    for ESP8266 (no such field); null when esptool stopped
                    before the "Image Footer" block
  validationHash    hex SHA-256 esptool *computed* over the image
  hashValid         bool, "(valid)" / "(invalid)" after that hash
  project, version, date, time, idfVersion, elfSHA256, minEfuseBlkRev,
  maxEfuseBlkRev, mmuPageSize, secureVersion (int)
                    from the "Application Information" block
  warnings          list of "WARNING: ..." lines, when any
  esptoolError      the text after "A fatal error occurred: " (else after
                    another "ERROR: ", else the last
                    line of a Python traceback) when esptool refused the
                    file, else null
  exitStatus        esptool's exit status
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys


def esptool_command(required=True):
    """The argv prefix that runs esptool, or None / exit 2 if missing."""
    if importlib.util.find_spec("esptool") is not None:
        return [sys.executable, "-m", "esptool"]
    for exe in ("esptool", "esptool.py"):
        path = shutil.which(exe)
        if path:
            return [path]
    if required:
        sys.stderr.write("esptool is not installed (pip install esptool)\n")
        sys.exit(2)
    return None


def quiet_env():
    env = dict(os.environ)
    env.update({"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "1000", "PYTHONIOENCODING": "utf-8"})
    env.pop("FORCE_COLOR", None)
    return env


def esptool_version():
    out = subprocess.run(esptool_command() + ["version"], capture_output=True,
                         text=True, env=quiet_env()).stdout
    return out.strip().splitlines()[-1] if out.strip() else "unknown"


def _strip_chip_name(name):
    return re.sub(r"[-()]", "", name.strip().lower())


def parse(output, returncode, chip=None):
    """Turn image-info output into the dictionary described in the docstring."""
    info = {"chip": chip, "exitStatus": returncode}
    segs = []
    warnings = []
    other_errors = []
    footer = False
    error = None
    seg_row = re.compile(r"^\s*(\d+)\s+(0x[0-9a-fA-F]+)\s+(0x[0-9a-fA-F]+)\s+(0x[0-9a-fA-F]+)\s*(.*)$")
    in_segments = False
    lines = output.splitlines()
    for line in lines:
        s = line.strip()
        if s == "Segments Information":
            in_segments = True
            continue
        if in_segments:
            m = seg_row.match(line)
            if m:
                segs.append({
                    "index": int(m.group(1)),
                    "length": int(m.group(2), 16),
                    "loadAddress": int(m.group(3), 16),
                    "fileOffset": int(m.group(4), 16),
                    "memoryTypes": [t.strip() for t in m.group(5).split(",") if t.strip()],
                })
                continue
            if s and not s.startswith(("Segment", "---", "=")):
                in_segments = False
        m = re.match(r"Detected image type: (.+)$", s)
        if m:
            info["chip"] = _strip_chip_name(m.group(1))
            continue
        if s.startswith(("WARNING:", "Warning:")):
            warnings.append(s)
            continue
        m = re.match(r"(?:ERROR: )?A fatal error occurred: (.*)$", s)
        if m:
            error = m.group(1)
            continue
        if s.startswith("ERROR: "):
            other_errors.append(s[len("ERROR: "):])
            continue
        if s.endswith("Image Footer"):
            footer = True
            continue
        m = re.match(r"Image size: (\d+) bytes$", s)
        if m:
            info["imageSize"] = int(m.group(1))
            continue
        simple = {
            "Image version: ": ("imageVersion", int),
            "Segments: ": ("segments", int),
            "Flash size: ": ("flashSize", str),
            "Flash freq: ": ("flashFreq", str),
            "Flash mode: ": ("flashMode", str),
            "Project name: ": ("project", str),
            "App version: ": ("version", str),
            "ELF file SHA256: ": ("elfSHA256", str),
            "ESP-IDF: ": ("idfVersion", str),
            "Minimal eFuse block revision: ": ("minEfuseBlkRev", str),
            "Maximal eFuse block revision: ": ("maxEfuseBlkRev", str),
            "MMU page size: ": ("mmuPageSize", str),
            "Secure version: ": ("secureVersion", int),
        }
        for prefix, (key, conv) in simple.items():
            # app strings may carry trailing spaces: cut the prefix from the raw line
            if line.startswith(prefix):
                info[key] = conv(line[len(prefix):])
                break
        else:
            m = re.match(r"Entry point: (0x[0-9a-fA-F]+)$", s)
            if m:
                info["entryPoint"] = int(m.group(1), 16)
                continue
            if s == "Entry point not set":
                info["entryPoint"] = 0
                continue
            m = re.match(r"Chip ID: (\d+) \((.*)\)$", s)
            if m:
                info["chipId"] = int(m.group(1))
                continue
            m = re.match(r"Minimal chip revision: (v\d+\.\d+), \(legacy min_rev = (\d+)\)$", s)
            if m:
                info["minChipRev"] = m.group(1)
                info["minRevLegacy"] = int(m.group(2))
                continue
            m = re.match(r"Maximal chip revision: (v\d+\.\d+)$", s)
            if m:
                info["maxChipRev"] = m.group(1)
                continue
            m = re.match(r"Checksum: (0x[0-9a-fA-F]+) \((valid|invalid - calculated (0x[0-9a-fA-F]+))\)$", s)
            if m:
                info["checksumStored"] = int(m.group(1), 16)
                info["checksumComputed"] = int(m.group(3) or m.group(1), 16)
                continue
            m = re.match(r"Validation hash: ([0-9a-fA-F]+) \((valid|invalid)\)$", s)
            if m:
                info["validationHash"] = m.group(1).lower()
                info["hashValid"] = m.group(2) == "valid"
                continue
            if line.startswith("Compile time: "):
                # "Compile time: <date> <time>"; both are fixed-width C strings
                rest = line[len("Compile time: "):]
                date, _, time = rest.rpartition(" ")
                info["date"], info["time"] = date, time
                continue
    if error is None and other_errors:
        error = other_errors[0]
    if error is None and returncode != 0:
        # uncaught exception (Python traceback) or a click usage box: last
        # line that has any text once box-drawing characters are removed
        tail = [l.strip(" \u2500\u2502\u256d\u256e\u256f\u2570") for l in lines]
        tail = [l for l in tail if any(ch.isalnum() for ch in l)]
        error = tail[-1] if tail else f"exit status {returncode}"
    if segs:
        info["segmentTable"] = segs
    if warnings:
        info["warnings"] = warnings
    # null when esptool stopped before printing the footer
    info["hashAppended"] = ("validationHash" in info) if footer else None
    info["esptoolError"] = error
    info["valid"] = bool(
        returncode == 0
        and error is None
        and "checksumStored" in info
        and info["checksumStored"] == info["checksumComputed"]
        and (not info["hashAppended"] or info.get("hashValid", False))
    )
    return info


def view(path, chip=None):
    """Run image-info on one file: (info dict, raw transcript)."""
    if not os.path.isfile(path):
        info = {"chip": chip, "exitStatus": None, "hashAppended": None,
                "esptoolError": f"no such file: {path}", "valid": False}
        return info, f"no such file: {path}\n"
    args = esptool_command()
    if chip:
        args += ["--chip", chip]
    args += ["image-info", path]
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=quiet_env(), cwd=os.path.dirname(os.path.abspath(path)))
    shown = ["esptool"] + (["--chip", chip] if chip else []) + ["image-info", os.path.basename(path)]
    raw = "$ " + " ".join(shown) + "\n" + proc.stdout
    if not raw.endswith("\n"):
        raw += "\n"
    raw += f"[exit status {proc.returncode}]\n"
    # esptool echoes the path it was given nowhere in image-info output, so the
    # transcript does not depend on where the fixtures live.
    return parse(proc.stdout, proc.returncode, chip), raw


def main(argv):
    chip = None
    files = []
    it = iter(argv)
    for a in it:
        if a in ("-c", "--chip"):
            chip = next(it, None)
        elif a.startswith("--chip="):
            chip = a.split("=", 1)[1]
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            files.append(a)
    esptool_command()  # exits 2 if missing
    result = {}
    for f in files:
        result[f] = view(f, chip)[0]
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
