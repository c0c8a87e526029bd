#!/usr/bin/env python3
"""Generate TUF client conformance fixtures with python-tuf.

Builds one directory per scenario under this directory:

    <scenario>/client/root.json          trusted root to initialise the client with
    <scenario>/client/<role>.json        (optional) previously trusted local metadata
    <scenario>/server/metadata/...       files exactly as a TUF HTTP repository serves them
    <scenario>/server/targets/...        target files (<sha256>.<basename> when consistent)

and writes:

    scenarios.json        one line per scenario: expected outcome (+ what ngclient did)
    ngclient-results.json full ngclient observations (exception chain, request log)
    canonical.json        canonical-JSON test vectors
    keys/*.pem            private keys (created once, reused on every run)
    keys/public-keys.json the public TUF key dicts and key ids of keys/*.pem

Every expectation is checked by running python-tuf's ngclient ``Updater``
against the generated files through a FetcherInterface that reads the
``server/`` directory directly (no sockets).  The script exits non-zero if
ngclient's outcome disagrees with an expectation that is not marked as a known
divergence from the TUF specification.

Pinned versions (see /work/notes/tuf-fixtures.md):
    pip install tuf==7.0.1 "securesystemslib[crypto]==1.6.0" cryptography==50.0.2

Re-running is deterministic except for ECDSA and RSA-PSS signatures (randomized
by design); ed25519-only scenarios are byte-identical across runs.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib import parse

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner, SSlibKey

import securesystemslib
import cryptography
import tuf
from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer
from tuf.ngclient import Updater, UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface

HERE = Path(__file__).resolve().parent
KEYS_DIR = HERE / "keys"
FAR = datetime(2099, 1, 1, tzinfo=timezone.utc)
PAST = datetime(2001, 1, 1, tzinfo=timezone.utc)
SERIALIZER = JSONSerializer(compact=False)  # indent=1, sort_keys=True
BASE_URL = "https://tuf.fixture.invalid/"
META_URL = BASE_URL + "metadata/"
TARGETS_URL = BASE_URL + "targets/"

EXPECTED_VERSIONS = {
    "tuf": "7.0.1",
    "securesystemslib": "1.6.0",
    "cryptography": "50.0.2",
}

# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------

# name -> how the private key is created the first time
KEY_KINDS: dict[str, str] = {
    "ecdsa-py": "python-ecdsa",
    "rsa-py": "python-rsa",
    "openssl-ed25519": "openssl-ed25519",
    "openssl-p256-ecparam": "openssl-ecparam",
    "openssl-p256-genpkey": "openssl-genpkey-ec",
}
KEY_SOURCES = {
    "python-ed25519": "securesystemslib CryptoSigner.generate_ed25519() (PKCS#8 PEM)",
    "python-ecdsa": "securesystemslib CryptoSigner.generate_ecdsa() P-256 (PKCS#8 PEM)",
    "python-rsa": "securesystemslib CryptoSigner.generate_rsa() 3072-bit (PKCS#8 PEM)",
    "openssl-ed25519": "openssl genpkey -algorithm ed25519",
    "openssl-ecparam": "openssl ecparam -name prime256v1 -genkey (SEC1 'EC PRIVATE KEY' + 'EC PARAMETERS' block)",
    "openssl-genpkey-ec": "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 (PKCS#8)",
}
_SIGNERS: dict[str, CryptoSigner] = {}


def key(name: str) -> CryptoSigner:
    """Return the CryptoSigner for keys/<name>.pem, creating the file once."""
    if name in _SIGNERS:
        return _SIGNERS[name]
    kind = KEY_KINDS.get(name, "python-ed25519")
    KEY_KINDS[name] = kind
    path = KEYS_DIR / f"{name}.pem"
    if not path.exists():
        KEYS_DIR.mkdir(parents=True, exist_ok=True)
        if kind == "python-ed25519":
            path.write_bytes(CryptoSigner.generate_ed25519().private_bytes)
        elif kind == "python-ecdsa":
            path.write_bytes(CryptoSigner.generate_ecdsa().private_bytes)
        elif kind == "python-rsa":
            path.write_bytes(CryptoSigner.generate_rsa(size=3072).private_bytes)
        elif kind == "openssl-ed25519":
            subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(path)], check=True)
        elif kind == "openssl-ecparam":
            subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-out", str(path)], check=True)
        elif kind == "openssl-genpkey-ec":
            subprocess.run(
                ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)],
                check=True,
            )
        else:
            raise ValueError(kind)
    priv = load_pem_private_key(path.read_bytes(), None)
    # public key, default scheme and default keyid computed by securesystemslib
    signer = CryptoSigner(priv)
    _SIGNERS[name] = signer
    return signer


def signer_with_key(name: str, public_key: SSlibKey) -> CryptoSigner:
    """Signer for keys/<name>.pem that uses a custom public key dict / keyid."""
    base = key(name)
    return CryptoSigner(base._private_key, public_key)  # noqa: SLF001


def write_public_keys() -> None:
    out = {}
    for name in sorted(_SIGNERS):
        pk = _SIGNERS[name].public_key
        out[name] = {
            "keyid": pk.keyid,
            "key": pk.to_dict(),
            "private_key_file": f"{name}.pem",
            "created_with": KEY_SOURCES[KEY_KINDS[name]],
            "keyid_check": hashlib.sha256(encode_canonical(pk.to_dict()).encode()).hexdigest() == pk.keyid,
        }
    (KEYS_DIR / "public-keys.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------
# Deterministic content helpers
# --------------------------------------------------------------------------


def blob(seed: str, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def dump(md: Metadata) -> bytes:
    return SERIALIZER.serialize(md)


def redump(data: bytes, mutate: Callable[[dict], None] | None = None, **kwargs: Any) -> bytes:
    """Re-serialize metadata JSON bytes after mutating the parsed dict."""
    obj = json.loads(data)
    if mutate:
        mutate(obj)
    opts = {"indent": 1, "separators": (",", ": "), "sort_keys": True}
    opts.update(kwargs)
    return json.dumps(obj, **opts).encode()


def reverse_keys(obj: Any) -> Any:
    """Same JSON value with every object's keys in reverse order (same length when indented)."""
    if isinstance(obj, dict):
        return {k: reverse_keys(obj[k]) for k in sorted(obj, reverse=True)}
    if isinstance(obj, list):
        return [reverse_keys(v) for v in obj]
    return obj


def sign(md: Metadata, signers: list[CryptoSigner]) -> Metadata:
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)
    return md


def flip_sig(md: Metadata, index: int = 0) -> None:
    """Flip one byte (XOR 0x01 of byte 10) inside the index-th signature."""
    sig = list(md.signatures.values())[index]
    raw = bytearray(bytes.fromhex(sig.signature))
    raw[10] ^= 0x01
    sig.signature = raw.hex()


BIN_ESP32 = blob("esp32/projectMM/2.1.0.bin", 6144)
BIN_W800 = blob("w800/app_ota.img", 3072)
README = (
    b"otamesh TUF fixture repository.\n"
    b"Quotes \" and backslashes \\ and UTF-8: \xc3\xa9\xe2\x82\xac\n"
)
BASIC_TARGETS: dict[str, tuple[bytes, dict | None, list[str]]] = {
    "esp32/projectMM/2.1.0.bin": (
        BIN_ESP32,
        {"format": "esp32-app", "hardware": "esp32", "version": "2.1.0", "project": "projectMM"},
        ["sha256"],
    ),
    "w800/app_ota.img": (
        BIN_W800,
        {"format": "w800-ota", "hardware": "w800", "version": "1.4.2", "project": "projectMM"},
        ["sha256"],
    ),
    # two hash algorithms: the consistent-snapshot repository stores one copy per hash
    "readme.txt": (README, None, ["sha256", "sha512"]),
}
MINI_TARGETS = {
    "fw/app.bin": (blob("fw/app.bin", 1024), {"format": "esp32-app", "hardware": "esp32", "version": "1.0.0"}, ["sha256"]),
    "readme.txt": (README, None, ["sha256"]),
}


def target_file(path: str, data: bytes, custom: dict | None, algos: list[str]) -> TargetFile:
    tf = TargetFile.from_data(path, data, algos)
    if custom is not None:
        tf.unrecognized_fields["custom"] = custom
    return tf


def top_keys(**override: list[str]) -> dict[str, list[str]]:
    keys = {"root": ["root-a"], "timestamp": ["timestamp-a"], "snapshot": ["snapshot-a"], "targets": ["targets-a"]}
    keys.update(override)
    return keys


def make_root(
    version: int = 1,
    *,
    keys: dict[str, list[str]] | None = None,
    thresholds: dict[str, int] | None = None,
    consistent: bool = True,
    expires: datetime = FAR,
    custom_keys: dict[str, CryptoSigner] | None = None,
) -> Root:
    """Root with keys named by keys/<name>.pem; custom_keys overrides the public key used for a name."""
    keys = keys or top_keys()
    custom_keys = custom_keys or {}
    root = Root(version=version, expires=expires, consistent_snapshot=consistent)
    for role, names in keys.items():
        for n in names:
            pk = custom_keys[n].public_key if n in custom_keys else key(n).public_key
            root.add_key(pk, role)
        root.roles[role].threshold = (thresholds or {}).get(role, 1)
    return root


# --------------------------------------------------------------------------
# Repository builder
# --------------------------------------------------------------------------


@dataclass
class Delegated:
    name: str
    md: Metadata  # Metadata[Targets]
    signers: list[CryptoSigner]


@dataclass
class Repo:
    """The result of building one repository state."""

    consistent: bool
    meta: dict[str, bytes] = field(default_factory=dict)  # server metadata filename -> bytes
    targets: dict[str, bytes] = field(default_factory=dict)  # server targets relpath -> bytes
    role_bytes: dict[str, bytes] = field(default_factory=dict)  # role -> canonical file bytes
    mds: dict[str, Metadata] = field(default_factory=dict)


def build_repo(
    *,
    roots: list[tuple[Root, list[CryptoSigner]]] | None = None,
    consistent: bool = True,
    targets: dict[str, tuple[bytes, dict | None, list[str]]] | None = None,
    versions: dict[str, int] | None = None,
    expires: dict[str, datetime] | None = None,
    signers: dict[str, list[CryptoSigner]] | None = None,
    delegations: Delegations | None = None,
    delegated: list[Delegated] | None = None,
    snapshot_meta_full: bool = True,
    timestamp_meta_full: bool = True,
    pre_sign: dict[str, Callable[[Metadata], None]] | None = None,
    post_sign: dict[str, Callable[[Metadata], None]] | None = None,
    post_bytes: dict[str, Callable[[bytes], bytes]] | None = None,
    meta_overrides: dict[str, dict] | None = None,
) -> Repo:
    """Build a complete repository state.

    meta_overrides: {"snapshot": {...MetaFile kwargs for timestamp's snapshot entry},
                     "targets.json": {...MetaFile kwargs in snapshot}} lets a scenario
                     make the referring metadata lie about version/length/hashes.
    """
    if roots is None:
        roots = [(make_root(consistent=consistent), [key("root-a")])]
    targets = BASIC_TARGETS if targets is None else targets
    versions = {"timestamp": 1, "snapshot": 1, "targets": 1, **(versions or {})}
    expires = {"timestamp": FAR, "snapshot": FAR, "targets": FAR, **(expires or {})}
    signers = {
        "timestamp": [key("timestamp-a")],
        "snapshot": [key("snapshot-a")],
        "targets": [key("targets-a")],
        **(signers or {}),
    }
    pre_sign = pre_sign or {}
    post_sign = post_sign or {}
    post_bytes = post_bytes or {}
    meta_overrides = meta_overrides or {}
    repo = Repo(consistent=consistent)

    def finish(role: str, md: Metadata, sg: list[CryptoSigner]) -> bytes:
        if role in pre_sign:
            pre_sign[role](md)
        sign(md, sg)
        if role in post_sign:
            post_sign[role](md)
        data = dump(md)
        if role in post_bytes:
            data = post_bytes[role](data)
        repo.mds[role] = md
        repo.role_bytes[role] = data
        return data

    for root, sg in roots:
        md = Metadata(root)
        data = finish(f"root@{root.version}", md, sg)
        repo.meta[f"{root.version}.root.json"] = data

    # target files
    tfiles = {p: target_file(p, d, c, a) for p, (d, c, a) in targets.items()}
    for p, tf in tfiles.items():
        data = targets[p][0]
        if consistent:
            for h in tf.hashes.values():
                parent, sep, name = p.rpartition("/")
                repo.targets[f"{parent}{sep}{h}.{name}"] = data
        else:
            repo.targets[p] = data

    snap_meta: dict[str, MetaFile] = {}

    def add_meta(fname: str, version: int, data: bytes) -> None:
        if snapshot_meta_full:
            mf = MetaFile.from_data(version, data, ["sha256"])
        else:
            mf = MetaFile(version)
        for k, v in meta_overrides.get(fname, {}).items():
            setattr(mf, k, v)
        snap_meta[fname] = mf

    for d in delegated or []:
        data = finish(d.name, d.md, d.signers)
        v = d.md.signed.version
        repo.meta[f"{v}.{d.name}.json" if consistent else f"{d.name}.json"] = data
        add_meta(f"{d.name}.json", v, data)

    t = Targets(version=versions["targets"], expires=expires["targets"], targets=tfiles, delegations=delegations)
    data = finish("targets", Metadata(t), signers["targets"])
    repo.meta[f"{t.version}.targets.json" if consistent else "targets.json"] = data
    add_meta("targets.json", t.version, data)

    s = Snapshot(version=versions["snapshot"], expires=expires["snapshot"], meta=snap_meta)
    data = finish("snapshot", Metadata(s), signers["snapshot"])
    repo.meta[f"{s.version}.snapshot.json" if consistent else "snapshot.json"] = data

    if timestamp_meta_full:
        smf = MetaFile.from_data(s.version, data, ["sha256"])
    else:
        smf = MetaFile(s.version)
    for k, v in meta_overrides.get("snapshot", {}).items():
        setattr(smf, k, v)
    ts = Timestamp(version=versions["timestamp"], expires=expires["timestamp"], snapshot_meta=smf)
    data = finish("timestamp", Metadata(ts), signers["timestamp"])
    repo.meta["timestamp.json"] = data
    return repo


# --------------------------------------------------------------------------
# Scenario bookkeeping
# --------------------------------------------------------------------------

SCENARIOS: dict[str, dict] = {}
RESULTS: dict[str, dict] = {}


def write_scenario(
    name: str,
    repo: Repo,
    *,
    description: str,
    refresh: Any = "ok",
    targets: dict[str, Any] | None = None,
    client_root: bytes | None = None,
    client_files: dict[str, bytes] | None = None,
    extra_meta: dict[str, bytes | None] | None = None,
    extra_targets: dict[str, bytes | None] | None = None,
    divergence: dict | None = None,
    extra: dict | None = None,
) -> None:
    """Write <name>/client and <name>/server and register the expectation.

    extra_meta / extra_targets: add or (value None) delete served files.
    divergence: {"ngclient": <ngclient's outcome in the same shape as refresh/targets>,
                 "explanation": "..."} when ngclient disagrees with the spec.
    """
    sdir = HERE / name
    if sdir.exists():
        shutil.rmtree(sdir)
    meta = dict(repo.meta)
    for k, v in (extra_meta or {}).items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    tgts = dict(repo.targets)
    for k, v in (extra_targets or {}).items():
        if v is None:
            tgts.pop(k, None)
        else:
            tgts[k] = v
    for fname, data in meta.items():
        p = sdir / "server" / "metadata" / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for rel, data in tgts.items():
        p = sdir / "server" / "targets" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (sdir / "client").mkdir(parents=True, exist_ok=True)
    if client_root is None:
        client_root = meta["1.root.json"]
    (sdir / "client" / "root.json").write_bytes(client_root)
    for fname, data in (client_files or {}).items():
        (sdir / "client" / fname).write_bytes(data)
    entry: dict[str, Any] = {"refresh": refresh, "targets": targets or {}, "description": description}
    if divergence:
        entry["divergence"] = divergence
    if extra:
        entry.update(extra)
    SCENARIOS[name] = entry


# --------------------------------------------------------------------------
# ngclient verification
# --------------------------------------------------------------------------


class DirFetcher(FetcherInterface):
    """Serve <scenario>/server/ for BASE_URL; records every request."""

    def __init__(self, server_dir: Path):
        self.server_dir = server_dir
        self.requests: list[str] = []

    def _fetch(self, url: str):  # noqa: ANN202
        if not url.startswith(BASE_URL):
            raise tuf_exc.DownloadHTTPError(f"unexpected url {url}", 404)
        rel = parse.unquote(url[len(BASE_URL):])
        self.requests.append(rel)
        path = self.server_dir / rel
        if not path.is_file():
            raise tuf_exc.DownloadHTTPError(f"404 Not Found: {rel}", 404)
        return iter([path.read_bytes()])


def describe_exc(e: BaseException) -> dict:
    chain = []
    cur: BaseException | None = e
    while cur is not None:
        chain.append({"exception": type(cur).__name__, "message": str(cur)})
        cur = cur.__cause__
    out = {"exception": f"{type(e).__module__}.{type(e).__name__}", "message": str(e)}
    if len(chain) > 1:
        out["caused_by"] = chain[1:]
    return out


def kinds_for(e: BaseException) -> set[str]:
    if isinstance(e, tuf_exc.ExpiredMetadataError):
        return {"expired"}
    if isinstance(e, tuf_exc.BadVersionNumberError):
        return {"rollback", "version-mismatch"}
    if isinstance(e, tuf_exc.UnsignedMetadataError):
        return {"bad-signature", "threshold", "root-rotation"}
    if isinstance(e, tuf_exc.LengthOrHashMismatchError):
        return {"length"} if "length" in str(e) else {"hash"}
    if isinstance(e, tuf_exc.DownloadLengthMismatchError):
        return {"length", "size-limit"}
    if isinstance(e, tuf_exc.DownloadHTTPError) and e.status_code == 404:
        return {"not-found"}
    if isinstance(e, DeserializationError):
        return {"invalid-metadata"}
    if isinstance(e, tuf_exc.RepositoryError):
        return {"rollback", "invalid-metadata"}
    return {"other"}


def failing_role(e: BaseException, requests: list[str]) -> str | None:
    """Role whose metadata was being verified when ngclient failed.

    Normally the last requested file; ngclient checks the final root's expiry
    only inside update_timestamp(), i.e. after downloading timestamp.json.
    """
    if isinstance(e, tuf_exc.ExpiredMetadataError) and "root.json" in str(e):
        return "root"
    return role_of_request(requests[-1]) if requests else None


def role_of_request(rel: str) -> str:
    """'metadata/3.targets.json' -> 'targets'; 'targets/...' -> 'target-file'."""
    if not rel.startswith("metadata/"):
        return "target-file"
    fname = parse.unquote(rel[len("metadata/"):])
    fname = fname[: -len(".json")]
    head, _, tail = fname.partition(".")
    return tail if head.isdigit() and tail else fname


def run_ngclient(name: str, config: UpdaterConfig) -> dict:
    sdir = HERE / name
    fetcher = DirFetcher(sdir / "server")
    obs: dict[str, Any] = {"targets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        md_dir = Path(tmp) / "metadata"
        md_dir.mkdir()
        for f in (sdir / "client").iterdir():
            if f.name != "root.json":
                shutil.copy(f, md_dir / f.name)
        updater = Updater(
            metadata_dir=str(md_dir),
            metadata_base_url=META_URL,
            target_dir=str(Path(tmp) / "downloads"),
            target_base_url=TARGETS_URL,
            fetcher=fetcher,
            config=config,
            bootstrap=(sdir / "client" / "root.json").read_bytes(),
        )
        try:
            updater.refresh()
            obs["refresh"] = "ok"
        except Exception as e:  # noqa: BLE001
            obs["refresh"] = describe_exc(e)
            obs["refresh_kinds"] = sorted(kinds_for(e))
            obs["refresh_role"] = failing_role(e, fetcher.requests)
        obs["refresh_requests"] = list(fetcher.requests)
        if obs["refresh"] == "ok":
            obs["trusted_versions"] = {
                r: updater._trusted_set[r].version  # noqa: SLF001
                for r in ("root", "timestamp", "snapshot", "targets")
            }
            for path in SCENARIOS[name]["targets"]:
                start = len(fetcher.requests)
                try:
                    info = updater.get_targetinfo(path)
                    if info is None:
                        obs["targets"][path] = "absent"
                    else:
                        dl = updater.download_target(info)
                        obs["targets"][path] = {
                            "result": "ok",
                            "length": info.length,
                            "sha256": hashlib.sha256(Path(dl).read_bytes()).hexdigest(),
                        }
                except Exception as e:  # noqa: BLE001
                    d = describe_exc(e)
                    d["kinds"] = sorted(kinds_for(e))
                    d["role"] = failing_role(e, fetcher.requests) if len(fetcher.requests) > start else None
                    obs["targets"][path] = d
                obs.setdefault("target_requests", {})[path] = fetcher.requests[start:]
    return obs


def summarize(obs: dict) -> dict:
    """Compact ngclient outcome in the scenarios.json shape."""

    def one(o: Any) -> Any:
        if o in ("ok", "absent"):
            return o
        if isinstance(o, dict) and o.get("result") == "ok":
            return "ok"
        return {"exception": o["exception"].rsplit(".", 1)[-1], "message": o["message"]}

    out = {"refresh": one(obs["refresh"])}
    if "trusted_versions" in obs:
        out["trusted_versions"] = obs["trusted_versions"]
    if obs["targets"]:
        out["targets"] = {p: one(o) for p, o in obs["targets"].items()}
    return out


def check(name: str, obs: dict, refresh_override: Any = None) -> list[str]:
    """Compare ngclient's observation with the spec expectation (or a documented ngclient outcome)."""
    exp = dict(SCENARIOS[name])
    if refresh_override is not None:
        exp["refresh"] = refresh_override
    problems = []

    def cmp(expected: Any, got: Any, got_kinds: list[str] | None, got_role: str | None, what: str) -> None:
        if expected in ("ok", "absent"):
            ok = got == expected or (expected == "ok" and isinstance(got, dict) and got.get("result") == "ok")
            if not ok:
                problems.append(f"{what}: expected {expected}, ngclient {got}")
            return
        if got in ("ok", "absent") or (isinstance(got, dict) and got.get("result") == "ok"):
            problems.append(f"{what}: expected {expected}, ngclient succeeded ({got})")
            return
        if expected["error"] not in (got_kinds or []):
            problems.append(f"{what}: expected kind {expected['error']}, ngclient {got_kinds} {got}")
        if "role" in expected and expected["role"] != got_role:
            problems.append(f"{what}: expected role {expected['role']}, ngclient failed at {got_role}")

    cmp(exp["refresh"], obs["refresh"], obs.get("refresh_kinds"), obs.get("refresh_role"), "refresh")
    if obs["refresh"] == "ok":
        for path, e in exp["targets"].items():
            got = obs["targets"][path]
            kinds = got.get("kinds") if isinstance(got, dict) else None
            role = got.get("role") if isinstance(got, dict) else None
            cmp(e, got, kinds, role, f"target {path}")
        for path, sha in exp.get("expected_sha256", {}).items():
            got = obs["targets"].get(path)
            if not (isinstance(got, dict) and got.get("sha256") == sha):
                problems.append(f"target {path}: expected content sha256 {sha}, ngclient {got}")
        if "final_versions" in exp and exp["final_versions"] != obs.get("trusted_versions"):
            problems.append(f"final versions {exp['final_versions']} != ngclient {obs.get('trusted_versions')}")
    return problems


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------

ALL_OK_BASIC = {p: "ok" for p in BASIC_TARGETS} | {"esp32/projectMM/9.9.9.bin": "absent"}
ALL_OK_MINI = {p: "ok" for p in MINI_TARGETS}


def s_basic() -> None:
    repo = build_repo()
    write_scenario(
        "basic",
        repo,
        description="consistent_snapshot=true, one ed25519 key per top-level role (threshold 1), 3 targets with custom "
        "metadata; snapshot lists targets.json with version+length+sha256, timestamp lists snapshot.json with "
        "version+length+sha256; readme.txt has sha256 and sha512 so the server holds two hash-prefixed copies",
        targets=ALL_OK_BASIC,
    )
    repo = build_repo(snapshot_meta_full=False, timestamp_meta_full=False)
    write_scenario(
        "basic-no-meta-hashes",
        repo,
        description="as basic but snapshot meta and timestamp meta carry only 'version' (no length/hashes): "
        "client must use its own download limits",
        targets=ALL_OK_BASIC,
    )


def s_keytypes() -> None:
    keys = top_keys(
        root=["rsa-py", "openssl-p256-ecparam"],
        timestamp=["openssl-ed25519"],
        snapshot=["openssl-p256-genpkey"],
        targets=["targets-a", "ecdsa-py"],
    )
    root = make_root(keys=keys, thresholds={"root": 2, "targets": 2})
    repo = build_repo(
        roots=[(root, [key("rsa-py"), key("openssl-p256-ecparam")])],
        signers={
            "timestamp": [key("openssl-ed25519")],
            "snapshot": [key("openssl-p256-genpkey")],
            "targets": [key("targets-a"), key("ecdsa-py")],
        },
    )
    write_scenario(
        "keytypes",
        repo,
        description="root threshold 2 signed by rsa (rsassa-pss-sha256, 3072-bit, python) + ecdsa P-256 "
        "(openssl ecparam SEC1 key); timestamp by an openssl-generated ed25519 key; snapshot by an openssl "
        "genpkey P-256 key; targets threshold 2 signed by ed25519 + ecdsa (python). ECDSA/RSA signatures are "
        "randomized so they differ on every regeneration",
        targets=ALL_OK_BASIC,
    )


def s_not_consistent() -> None:
    root = make_root(consistent=False)
    repo = build_repo(roots=[(root, [key("root-a")])], consistent=False)
    write_scenario(
        "not-consistent",
        repo,
        description="consistent_snapshot=false: metadata served as snapshot.json / targets.json (roots are still "
        "always N.root.json) and targets at their plain path",
        targets=ALL_OK_BASIC,
    )


def s_cached() -> None:
    repo = build_repo(targets=MINI_TARGETS)
    client = {f"{r}.json": repo.role_bytes[r] for r in ("timestamp", "snapshot", "targets")}
    write_scenario(
        "cached-uptodate",
        repo,
        description="client already holds exactly the server's timestamp/snapshot/targets: the new timestamp has "
        "an equal version (spec 5.4.3.1: discard it, not an error); ngclient then uses the cached snapshot and "
        "targets without downloading them",
        client_files=client,
        targets=ALL_OK_MINI,
    )
    old = build_repo(targets=MINI_TARGETS)
    new = build_repo(targets=MINI_TARGETS, versions={"timestamp": 2, "snapshot": 2, "targets": 2})
    write_scenario(
        "update-from-cached",
        new,
        description="client holds v1 timestamp/snapshot/targets, server has v2 of each: normal update",
        client_files={f"{r}.json": old.role_bytes[r] for r in ("timestamp", "snapshot", "targets")},
        extra_meta={"1.snapshot.json": old.meta["1.snapshot.json"], "1.targets.json": old.meta["1.targets.json"]},
        targets=ALL_OK_MINI,
    )


def s_root_rotation() -> None:
    k1 = top_keys()
    k2 = top_keys(root=["root-b", "root-c"])
    k3 = top_keys(root=["root-c", "root-d"], timestamp=["timestamp-b"], snapshot=["snapshot-b"])
    r1 = make_root(1, keys=k1)
    r2 = make_root(2, keys=k2, thresholds={"root": 2})
    r3 = make_root(3, keys=k3, thresholds={"root": 2})
    roots = [
        (r1, [key("root-a")]),
        (r2, [key("root-a"), key("root-b"), key("root-c")]),
        (r3, [key("root-b"), key("root-c"), key("root-d")]),
    ]
    repo = build_repo(
        roots=roots,
        targets=MINI_TARGETS,
        versions={"timestamp": 3, "snapshot": 3, "targets": 2},
        signers={"timestamp": [key("timestamp-b")], "snapshot": [key("snapshot-b")]},
    )
    # what the client trusted before the repository was recovered: fast-forwarded versions, old keys
    ff = build_repo(targets=MINI_TARGETS, versions={"timestamp": 10, "snapshot": 10, "targets": 10})
    write_scenario(
        "root-rotation",
        repo,
        description="1.root (root-a, thr 1) -> 2.root (root-b+root-c, thr 2; signed by root-a, root-b, root-c) -> "
        "3.root (root-c+root-d, thr 2; timestamp and snapshot keys rotated; signed by root-b, root-c, root-d). "
        "client/ holds timestamp v10 + snapshot v10 (listing targets v10) signed with the OLD timestamp/snapshot "
        "keys (a fast-forward attack); server has timestamp v3 / snapshot v3 / targets v2 under the new keys. "
        "Spec 5.3.11: keys rotated -> delete trusted timestamp+snapshot -> update succeeds",
        client_files={"timestamp.json": ff.role_bytes["timestamp"], "snapshot.json": ff.role_bytes["snapshot"]},
        targets=ALL_OK_MINI,
        extra={"final_versions": {"root": 3, "timestamp": 3, "snapshot": 3, "targets": 2}},
    )

    # only the snapshot key is rotated: spec says delete trusted timestamp AND snapshot
    k2s = top_keys(snapshot=["snapshot-b"])
    r2s = make_root(2, keys=k2s)
    repo = build_repo(
        roots=[(r1, [key("root-a")]), (r2s, [key("root-a")])],
        targets=MINI_TARGETS,
        versions={"timestamp": 3, "snapshot": 3, "targets": 2},
        signers={"snapshot": [key("snapshot-b")]},
    )
    write_scenario(
        "root-rotation-snapshot-key-only",
        repo,
        description="2.root rotates ONLY the snapshot key. client/ holds fast-forwarded timestamp v10 (timestamp key "
        "unchanged, so it still verifies) and snapshot v10 (old snapshot key). Spec 5.3.11: timestamp and/or "
        "snapshot keys rotated -> delete BOTH trusted timestamp and snapshot -> succeeds with timestamp v3",
        client_files={"timestamp.json": ff.role_bytes["timestamp"], "snapshot.json": ff.role_bytes["snapshot"]},
        targets=ALL_OK_MINI,
        divergence={
            "ngclient": {"error": "rollback", "role": "timestamp"},
            "explanation": "ngclient does not implement 5.3.11 explicitly: it loads the cached timestamp.json and "
            "keeps it if it still verifies under the new root. Here the timestamp key did not change, so the "
            "fast-forwarded v10 stays trusted and the server's v3 is rejected as a rollback. A client that follows "
            "5.3.11 literally (delete timestamp+snapshot when either key set changed) succeeds.",
        },
    )

    # only the timestamp key is rotated
    k2t = top_keys(timestamp=["timestamp-b"])
    r2ts = make_root(2, keys=k2t)
    repo = build_repo(
        roots=[(r1, [key("root-a")]), (r2ts, [key("root-a")])],
        targets=MINI_TARGETS,
        versions={"timestamp": 3, "snapshot": 3, "targets": 2},
        signers={"timestamp": [key("timestamp-b")]},
    )
    write_scenario(
        "root-rotation-timestamp-key-only",
        repo,
        description="2.root rotates ONLY the timestamp key. client/ holds fast-forwarded timestamp v10 (old "
        "timestamp key) and snapshot v10 (snapshot key unchanged, still verifies; lists targets.json v10). "
        "Spec 5.3.11: delete BOTH trusted timestamp and snapshot -> succeeds with timestamp v3 / snapshot v3 / "
        "targets v2",
        client_files={"timestamp.json": ff.role_bytes["timestamp"], "snapshot.json": ff.role_bytes["snapshot"]},
        targets=ALL_OK_MINI,
        divergence={
            "ngclient": {"error": "rollback", "role": "snapshot"},
            "explanation": "ngclient drops the cached timestamp (its key changed) but still loads the cached "
            "snapshot.json as 'intermediate' snapshot because its signature verifies under the new root; the new "
            "snapshot v3 (targets.json v2) is then rejected as a targets rollback against the fast-forwarded "
            "targets v10. A client following 5.3.11 literally succeeds.",
        },
    )

    # new root not signed by the new key
    r2b = make_root(2, keys=top_keys(root=["root-b"]))
    repo = build_repo(roots=[(r1, [key("root-a")]), (r2b, [key("root-a")])], targets=MINI_TARGETS)
    write_scenario(
        "root-rotation-missing-new-sig",
        repo,
        description="2.root rotates the root key root-a -> root-b but is signed only by the old key root-a: "
        "threshold of the NEW root not met (spec 5.3.4 (2))",
        refresh={"error": "root-rotation", "role": "root"},
    )
    repo = build_repo(roots=[(r1, [key("root-a")]), (r2b, [key("root-b")])], targets=MINI_TARGETS)
    write_scenario(
        "root-rotation-missing-old-sig",
        repo,
        description="2.root rotates the root key root-a -> root-b but is signed only by the new key root-b: "
        "threshold of the TRUSTED (previous) root not met (spec 5.3.4 (1))",
        refresh={"error": "root-rotation", "role": "root"},
    )
    # threshold increase: new root needs 2 of its own keys, only 1 of them signs
    r2t = make_root(2, keys=top_keys(root=["root-a", "root-b"]), thresholds={"root": 2})
    repo = build_repo(roots=[(r1, [key("root-a")]), (r2t, [key("root-a")])], targets=MINI_TARGETS)
    write_scenario(
        "root-rotation-threshold-increase",
        repo,
        description="2.root raises the root threshold to 2 (root-a, root-b) but only root-a signs: old threshold "
        "(1) met, new threshold (2) not met",
        refresh={"error": "root-rotation", "role": "root"},
    )


def s_expired() -> None:
    r1 = make_root(1)
    r2 = make_root(2, expires=PAST)
    r3 = make_root(3)
    repo = build_repo(roots=[(r1, [key("root-a")]), (r2, [key("root-a")]), (r3, [key("root-a")])], targets=MINI_TARGETS)
    write_scenario(
        "root-expired-intermediate",
        repo,
        description="2.root.json expired in 2001 but 3.root.json is valid: intermediate root expiry does not "
        "matter (spec 5.3.6), only the final root's (5.3.10)",
        targets=ALL_OK_MINI,
    )
    repo = build_repo(roots=[(r1, [key("root-a")]), (r2, [key("root-a")])], targets=MINI_TARGETS)
    write_scenario(
        "expired-root",
        repo,
        description="the newest root (2.root.json) expired in 2001: freeze attack (spec 5.3.10)",
        refresh={"error": "expired", "role": "root"},
    )
    r1x = make_root(1, expires=PAST)
    repo = build_repo(roots=[(r1x, [key("root-a")])], targets=MINI_TARGETS)
    write_scenario(
        "expired-root-trusted",
        repo,
        description="the client's own trusted root (1.root.json) expired in 2001 and no newer root exists",
        refresh={"error": "expired", "role": "root"},
    )
    for role in ("timestamp", "snapshot", "targets"):
        repo = build_repo(targets=MINI_TARGETS, expires={role: PAST})
        write_scenario(
            f"expired-{role}",
            repo,
            description=f"{role} metadata expired 2001-01-01T00:00:00Z (freeze attack)",
            refresh={"error": "expired", "role": role},
        )


def s_rollback() -> None:
    # root: client trusts v2; server's 3.root.json is (a copy of) root v1
    r1, r2 = make_root(1), make_root(2)
    repo = build_repo(roots=[(r1, [key("root-a")]), (r2, [key("root-a")])], targets=MINI_TARGETS)
    write_scenario(
        "rollback-root",
        repo,
        description="client trusts root v2; the server's 3.root.json is a validly signed root whose version is 1 "
        "(not trusted+1): rollback (spec 5.3.5)",
        client_root=repo.meta["2.root.json"],
        extra_meta={"3.root.json": repo.meta["1.root.json"]},
        refresh={"error": "rollback", "role": "root"},
    )
    repo = build_repo(roots=[(r1, [key("root-a")])], targets=MINI_TARGETS)
    write_scenario(
        "root-same-version",
        repo,
        description="client trusts root v1; the server's 2.root.json contains root version 1 again (equal to the "
        "trusted version). Spec 1.0.30+ 5.3.5: 'In case they are equal, again discard the new root metadata, "
        "but proceed the update cycle with the already trusted root metadata'",
        extra_meta={"2.root.json": repo.meta["1.root.json"]},
        targets=ALL_OK_MINI,
        divergence={
            "ngclient": {"error": "rollback", "role": "root"},
            "explanation": "ngclient requires version == trusted+1 exactly and raises BadVersionNumberError for an "
            "equal version. Older spec text (<1.0.30) also treated anything but N+1 as an error; a Swift client "
            "that fails here is conservative, one that succeeds follows the current spec.",
        },
    )

    # timestamp: client trusts v5, server serves v4
    newer = build_repo(targets=MINI_TARGETS, versions={"timestamp": 5})
    older = build_repo(targets=MINI_TARGETS, versions={"timestamp": 4})
    write_scenario(
        "rollback-timestamp",
        older,
        description="client holds timestamp v5; server serves a validly signed timestamp v4 (spec 5.4.3.1)",
        client_files={"timestamp.json": newer.role_bytes["timestamp"]},
        refresh={"error": "rollback", "role": "timestamp"},
    )

    # snapshot: client trusts timestamp v2 -> snapshot v2; server timestamp v3 lists snapshot v1
    newer = build_repo(targets=MINI_TARGETS, versions={"timestamp": 2, "snapshot": 2})
    older = build_repo(targets=MINI_TARGETS, versions={"timestamp": 3, "snapshot": 1})
    write_scenario(
        "rollback-snapshot",
        older,
        description="client holds timestamp v2 (snapshot meta v2) and snapshot v2; server serves a newer "
        "timestamp v3 whose snapshot meta says version 1 (and 1.snapshot.json): the new timestamp is rejected "
        "(spec 5.4.3.2) - the failing file is timestamp.json",
        client_files={"timestamp.json": newer.role_bytes["timestamp"], "snapshot.json": newer.role_bytes["snapshot"]},
        refresh={"error": "rollback", "role": "timestamp"},
    )

    # targets: trusted snapshot lists targets v3, new snapshot lists targets v2
    newer = build_repo(targets=MINI_TARGETS, versions={"timestamp": 2, "snapshot": 2, "targets": 3})
    older = build_repo(targets=MINI_TARGETS, versions={"timestamp": 3, "snapshot": 3, "targets": 2})
    write_scenario(
        "rollback-targets",
        older,
        description="client holds timestamp v2, snapshot v2 (targets.json v3) and targets v3; server serves "
        "timestamp v3 -> snapshot v3 listing targets.json v2 and 2.targets.json: the new snapshot is rejected "
        "(spec 5.5.5) - the failing file is the snapshot",
        client_files={f"{r}.json": newer.role_bytes[r] for r in ("timestamp", "snapshot", "targets")},
        refresh={"error": "rollback", "role": "snapshot"},
    )

    # snapshot drops a previously listed metadata file
    d = Metadata(Targets(version=1, expires=FAR))
    deleg = Delegations(
        keys={key("delegate-esp32").public_key.keyid: key("delegate-esp32").public_key},
        roles={"esp32-role": DelegatedRole("esp32-role", [key("delegate-esp32").public_key.keyid], 1, False, ["esp32/*"])},
    )
    newer = build_repo(
        targets=MINI_TARGETS,
        delegations=deleg,
        delegated=[Delegated("esp32-role", d, [key("delegate-esp32")])],
    )
    older = build_repo(targets=MINI_TARGETS, versions={"timestamp": 2, "snapshot": 2, "targets": 2})
    write_scenario(
        "rollback-snapshot-removed-meta",
        older,
        description="trusted snapshot v1 lists targets.json and esp32-role.json; the new snapshot v2 no longer "
        "lists esp32-role.json (spec 5.5.5: every listed file MUST continue to be listed)",
        client_files={"timestamp.json": newer.role_bytes["timestamp"], "snapshot.json": newer.role_bytes["snapshot"]},
        refresh={"error": "rollback", "role": "snapshot"},
    )


def s_mix_and_match() -> None:
    # snapshot says targets v3 (version only); server's 3.targets.json is a validly signed targets v2
    repo = build_repo(targets=MINI_TARGETS, versions={"targets": 2}, snapshot_meta_full=False,
                      meta_overrides={"targets.json": {"version": 3}})
    write_scenario(
        "mix-and-match",
        repo,
        description="snapshot lists targets.json version 3 (no hashes/length); 3.targets.json on the server is a "
        "validly signed targets with version 2 (spec 5.6.4)",
        extra_meta={"3.targets.json": repo.meta["2.targets.json"], "2.targets.json": None},
        refresh={"error": "version-mismatch", "role": "targets"},
    )
    repo = build_repo(targets=MINI_TARGETS, versions={"snapshot": 2}, timestamp_meta_full=False,
                      meta_overrides={"snapshot": {"version": 3}})
    write_scenario(
        "snapshot-version-mismatch",
        repo,
        description="timestamp lists snapshot.json version 3 (no hashes/length); 3.snapshot.json on the server "
        "is a validly signed snapshot version 2 (spec 5.5.4)",
        extra_meta={"3.snapshot.json": repo.meta["2.snapshot.json"], "2.snapshot.json": None},
        refresh={"error": "version-mismatch", "role": "snapshot"},
    )
    # hash of targets listed in snapshot does not match: same signed content, different JSON bytes, same length
    repo = build_repo(targets=MINI_TARGETS)
    orig = repo.meta["1.targets.json"]
    alt = json.dumps(reverse_keys(json.loads(orig)), indent=1, separators=(",", ": ")).encode()
    assert len(alt) == len(orig) and alt != orig
    write_scenario(
        "targets-meta-hash-mismatch",
        repo,
        description="snapshot lists targets.json with length+sha256; the served 1.targets.json has the same "
        "length and still-valid signatures (same 'signed' content, keys re-ordered) but different bytes: hash "
        "mismatch (spec 5.6.2, checked before signatures)",
        extra_meta={"1.targets.json": alt},
        refresh={"error": "hash", "role": "targets"},
    )
    repo = build_repo(targets=MINI_TARGETS)
    orig = repo.meta["1.snapshot.json"]
    longer = redump(orig, indent=4)
    write_scenario(
        "snapshot-meta-length-mismatch",
        repo,
        description="timestamp lists snapshot.json length L; the served 1.snapshot.json is the same validly "
        "signed snapshot re-indented (longer than L). ngclient stops downloading after L bytes",
        extra_meta={"1.snapshot.json": longer},
        refresh={"error": "length", "role": "snapshot"},
        extra={"served_length": len(longer), "listed_length": len(orig)},
    )


def s_signatures() -> None:
    repo = build_repo(targets=MINI_TARGETS, post_sign={"timestamp": flip_sig})
    write_scenario(
        "bad-signature",
        repo,
        description="one byte flipped (byte 10 XOR 0x01) inside the only timestamp signature",
        refresh={"error": "bad-signature", "role": "timestamp"},
        extra={"also_acceptable": ["threshold"]},
    )
    r1, r2 = make_root(1), make_root(2)
    repo = build_repo(roots=[(r1, [key("root-a")]), (r2, [key("root-a")])], targets=MINI_TARGETS,
                      post_sign={"root@2": flip_sig})
    write_scenario(
        "bad-signature-root",
        repo,
        description="2.root.json (same keys as 1) with one byte flipped inside its only signature",
        refresh={"error": "bad-signature", "role": "root"},
        extra={"also_acceptable": ["threshold", "root-rotation"]},
    )
    repo = build_repo(targets=MINI_TARGETS, signers={"snapshot": [key("attacker")]})
    write_scenario(
        "wrong-key",
        repo,
        description="snapshot signed by a key that root does not list (timestamp's hash matches the served file, "
        "so the signature check is what fails)",
        refresh={"error": "threshold", "role": "snapshot"},
        extra={"also_acceptable": ["bad-signature"]},
    )
    root = make_root(keys=top_keys(targets=["targets-a", "targets-b"]), thresholds={"targets": 2})
    repo = build_repo(roots=[(root, [key("root-a")])], targets=MINI_TARGETS, signers={"targets": [key("targets-a")]})
    write_scenario(
        "threshold-not-met",
        repo,
        description="targets threshold 2 (targets-a, targets-b); only targets-a signed",
        refresh={"error": "threshold", "role": "targets"},
    )
    # unrelated extra signature + threshold met -> ok
    repo = build_repo(roots=[(root, [key("root-a")])], targets=MINI_TARGETS,
                      signers={"targets": [key("attacker"), key("targets-b"), key("targets-a")]})
    write_scenario(
        "threshold-met-extra-sig",
        repo,
        description="targets threshold 2 signed by targets-a, targets-b and an unknown key (listed first): "
        "unknown-key signatures are ignored",
        targets=ALL_OK_MINI,
    )

    def dup(data: bytes) -> bytes:
        return redump(data, lambda o: o["signatures"].append(copy.deepcopy(o["signatures"][0])))

    repo = build_repo(roots=[(root, [key("root-a")])], targets=MINI_TARGETS,
                      signers={"targets": [key("targets-a")]}, post_bytes={"targets": dup})
    write_scenario(
        "duplicate-signatures",
        repo,
        description="targets threshold 2; signatures array holds targets-a's (valid) signature twice. A key counts "
        "once, so the threshold is not met; the spec also says keyids MUST be unique in 'signatures'",
        refresh={"error": "threshold", "role": "targets"},
        extra={"also_acceptable": ["invalid-metadata"]},
        divergence={
            "ngclient": {"error": "invalid-metadata", "role": "targets"},
            "explanation": "same verdict (rejected), different reason: ngclient refuses to parse metadata whose "
            "signatures array repeats a keyid (ValueError 'Multiple signatures found for keyid ...' wrapped in "
            "DeserializationError 'Failed to deserialize JSON') before counting signatures",
        },
    )
    repo = build_repo(targets=MINI_TARGETS, post_bytes={"targets": dup})
    write_scenario(
        "duplicate-signatures-threshold1",
        repo,
        description="targets threshold 1; the valid targets-a signature appears twice. Deduplicating would meet "
        "the threshold, but the spec says 'multiple signatures with the same keyid are not allowed'",
        refresh={"error": "invalid-metadata", "role": "targets"},
    )


def s_keyids() -> None:
    # keyid that is not sha256(canonical(key))
    t = key("targets-b")
    bogus = SSlibKey(hashlib.sha256(b"otamesh: not the key id").hexdigest(), t.public_key.keytype,
                     t.public_key.scheme, dict(t.public_key.keyval))
    bogus_signer = signer_with_key("targets-b", bogus)
    r1 = make_root(1)
    r2 = make_root(2, keys=top_keys(targets=["targets-b"]), custom_keys={"targets-b": bogus_signer})
    repo = build_repo(roots=[(r1, [key("root-a")]), (r2, [key("root-a")])], targets=MINI_TARGETS,
                      signers={"targets": [bogus_signer]})
    write_scenario(
        "keyid-mismatch",
        repo,
        description="2.root.json lists the targets key under a keyid that is NOT sha256(canonical JSON of the key); "
        "targets is signed with that keyid. Spec (root KEYID): 'Clients MUST calculate each KEYID to verify "
        "this is correct for the associated key' -> reject 2.root.json",
        refresh={"error": "invalid-metadata", "role": "root"},
        divergence={
            "ngclient": "ok",
            "explanation": "securesystemslib/python-tuf treat keyids as opaque identifiers ('Keyid is not verified "
            "to be the hash of a specific representation of the key') and accept this repository",
        },
        extra={"bad_keyid": bogus.keyid},
    )
    # legacy key dict with keyid_hash_algorithms, keyid computed over the full dict
    legacy = SSlibKey("0" * 64, t.public_key.keytype, t.public_key.scheme, dict(t.public_key.keyval),
                      {"keyid_hash_algorithms": ["sha256", "sha512"]})
    legacy.keyid = hashlib.sha256(encode_canonical(legacy.to_dict()).encode()).hexdigest()
    legacy_signer = signer_with_key("targets-b", legacy)
    r2 = make_root(2, keys=top_keys(targets=["targets-b"]), custom_keys={"targets-b": legacy_signer})
    repo = build_repo(roots=[(r1, [key("root-a")]), (r2, [key("root-a")])], targets=MINI_TARGETS,
                      signers={"targets": [legacy_signer]})
    write_scenario(
        "legacy-keyid-hash-algorithms",
        repo,
        description="2.root.json lists the targets ed25519 key with the legacy extra field "
        "\"keyid_hash_algorithms\": [\"sha256\", \"sha512\"] (as written by python-tuf <1.0 / go-tuf 0.x); its "
        "keyid is sha256 of the canonical JSON of the WHOLE key object including that field. A keyid-verifying "
        "client must hash the key object exactly as it appears, not a re-built {keytype,scheme,keyval}",
        targets=ALL_OK_MINI,
        extra={"legacy_keyid": legacy.keyid,
               "keyid_without_legacy_field": t.public_key.keyid},
    )


def s_legacy_ecdsa() -> None:
    e = key("ecdsa-py").public_key
    kd = {"keytype": "ecdsa-sha2-nistp256", "scheme": "ecdsa-sha2-nistp256", "keyval": dict(e.keyval)}
    legacy = SSlibKey(hashlib.sha256(encode_canonical(kd).encode()).hexdigest(), kd["keytype"], kd["scheme"], kd["keyval"])
    legacy_signer = signer_with_key("ecdsa-py", legacy)
    root = make_root(keys=top_keys(snapshot=["ecdsa-py"]), custom_keys={"ecdsa-py": legacy_signer})
    repo = build_repo(roots=[(root, [key("root-a")])], targets=MINI_TARGETS, signers={"snapshot": [legacy_signer]})
    write_scenario(
        "legacy-ecdsa-keytype",
        repo,
        description="snapshot key uses the older keytype spelling \"ecdsa-sha2-nistp256\" (the spec text's "
        "keytype; securesystemslib now writes keytype \"ecdsa\" and still accepts the old one with a "
        "DeprecationWarning); keyid = sha256 of the canonical key dict with that keytype",
        targets=ALL_OK_MINI,
    )


def s_targets_attacks() -> None:
    tgts = dict(MINI_TARGETS)
    repo = build_repo(targets=tgts)
    tf = target_file("fw/app.bin", *tgts["fw/app.bin"])
    h = tf.hashes["sha256"]
    evil = bytearray(tgts["fw/app.bin"][0])
    evil[100] ^= 0xFF
    write_scenario(
        "target-hash-mismatch",
        repo,
        description="fw/app.bin served (at fw/<signed sha256>.app.bin) with one byte changed: same length, wrong "
        "hash",
        extra_targets={f"fw/{h}.app.bin": bytes(evil)},
        targets={"fw/app.bin": {"error": "hash"}, "readme.txt": "ok"},
    )
    write_scenario(
        "target-too-long",
        repo,
        description="fw/app.bin served with 512 extra bytes appended (longer than its signed length 1024): "
        "the client must not read past the signed length (endless data attack)",
        extra_targets={f"fw/{h}.app.bin": tgts["fw/app.bin"][0] + b"\x00" * 512},
        targets={"fw/app.bin": {"error": "length"}, "readme.txt": "ok"},
    )
    write_scenario(
        "target-too-short",
        repo,
        description="fw/app.bin served truncated to 1000 bytes (signed length 1024)",
        extra_targets={f"fw/{h}.app.bin": tgts["fw/app.bin"][0][:1000]},
        targets={"fw/app.bin": {"error": "length"}, "readme.txt": "ok"},
    )
    write_scenario(
        "target-missing",
        repo,
        description="fw/app.bin is listed in targets but the server has no file for it (HTTP 404)",
        extra_targets={f"fw/{h}.app.bin": None},
        targets={"fw/app.bin": {"error": "not-found"}, "readme.txt": "ok"},
    )


def s_limits() -> None:
    def pad(md: Metadata) -> None:
        md.signed.unrecognized_fields["x-otamesh-padding"] = "A" * 20000

    repo = build_repo(targets=MINI_TARGETS, pre_sign={"timestamp": pad})
    cfg = UpdaterConfig()
    write_scenario(
        "timestamp-too-large",
        repo,
        description="timestamp.json is ~20 KB (validly signed, padded with an unrecognized 'signed' field "
        "'x-otamesh-padding'); ngclient's default timestamp_max_length is 16384 bytes",
        refresh={"error": "size-limit", "role": "timestamp"},
        extra={
            "served_length": len(repo.meta["timestamp.json"]),
            "ngclient_config": {
                "max_root_rotations": cfg.max_root_rotations,
                "max_delegations": cfg.max_delegations,
                "root_max_length": cfg.root_max_length,
                "timestamp_max_length": cfg.timestamp_max_length,
                "snapshot_max_length": cfg.snapshot_max_length,
                "targets_max_length": cfg.targets_max_length,
            },
        },
    )
    repo = build_repo(targets=MINI_TARGETS)
    write_scenario(
        "missing-timestamp",
        repo,
        description="server has no timestamp.json (HTTP 404)",
        extra_meta={"timestamp.json": None},
        refresh={"error": "not-found", "role": "timestamp"},
    )
    write_scenario(
        "missing-snapshot",
        repo,
        description="timestamp lists snapshot v1 but the server has no 1.snapshot.json (HTTP 404)",
        extra_meta={"1.snapshot.json": None},
        refresh={"error": "not-found", "role": "snapshot"},
    )


def s_delegations() -> None:
    def dkey(n: str):
        return key(n).public_key

    def role(name: str, keys: list[str], threshold: int = 1, terminating: bool = False,
             paths: list[str] | None = None, prefixes: list[str] | None = None) -> DelegatedRole:
        return DelegatedRole(name, [dkey(k).keyid for k in keys], threshold, terminating, paths, prefixes)

    def delegs(roles: list[DelegatedRole], keys: list[str]) -> Delegations:
        return Delegations(keys={dkey(k).keyid: dkey(k) for k in keys}, roles={r.name: r for r in roles})

    def tmd(targets: dict[str, bytes], delegations: Delegations | None = None, version: int = 1) -> Metadata:
        return Metadata(Targets(version=version, expires=FAR,
                                targets={p: target_file(p, d, None, ["sha256"]) for p, d in targets.items()},
                                delegations=delegations))

    files = {
        "esp32/app.bin": blob("esp32/app.bin", 700),
        "esp32/projectMM/2.1.0.bin": BIN_ESP32,
        "esp32/board-c3.bin": blob("esp32/board-c3.bin", 600),
        "esp32/board-s3.bin": blob("esp32/board-s3.bin", 500),
        "hashed/fw-a.bin": blob("hashed/fw-a.bin", 400),
        "hashed/fw-b.bin": blob("hashed/fw-b.bin", 400),
        "w800/app_ota.img#terminating": BIN_W800,
        "w800/app_ota.img#later": blob("w800/app_ota.img (shadowed copy)", 3000),
        "w800/only-in-later.img": blob("w800/only-in-later.img", 300),
        "shared/lib.bin": blob("shared/lib.bin", 300),
        "shared/tool.bin": blob("shared/tool.bin", 300),
        "secure/boot.bin": blob("secure/boot.bin", 256),
        "secure-broken/x.bin": blob("secure-broken/x.bin", 256),
    }
    ha = hashlib.sha256(b"hashed/fw-a.bin").hexdigest()
    hb = hashlib.sha256(b"hashed/fw-b.bin").hexdigest()
    n = 1
    while hb.startswith(ha[:n]):
        n += 1
    prefix = ha[: max(n, 2)]

    s3 = tmd({"esp32/board-s3.bin": files["esp32/board-s3.bin"]})
    boards = tmd({"esp32/board-c3.bin": files["esp32/board-c3.bin"]},
                 delegs([role("esp32-board-s3", ["delegate-s3"], paths=["esp32/board-s3*"])], ["delegate-s3"]))
    esp32 = tmd({"esp32/app.bin": files["esp32/app.bin"], "esp32/projectMM/2.1.0.bin": files["esp32/projectMM/2.1.0.bin"]},
                delegs([role("esp32-boards", ["delegate-boards"], paths=["esp32/board-*"])], ["delegate-boards"]))
    hashed = tmd({"hashed/fw-a.bin": files["hashed/fw-a.bin"], "hashed/fw-b.bin": files["hashed/fw-b.bin"]})
    w_term = tmd({"w800/app_ota.img": files["w800/app_ota.img#terminating"]})
    w_later = tmd({"w800/app_ota.img": files["w800/app_ota.img#later"],
                   "w800/only-in-later.img": files["w800/only-in-later.img"]})
    shared_a = tmd({}, delegs([
        role("shared-a-term", ["delegate-shared"], terminating=True, paths=["shared/t*"]),
        role("shared-a-child", ["delegate-shared"], paths=["shared/*"]),
    ], ["delegate-shared"]))
    shared_a_term = tmd({})
    shared_a_child = tmd({})
    shared_b = tmd({"shared/lib.bin": files["shared/lib.bin"], "shared/tool.bin": files["shared/tool.bin"]})
    secure = tmd({"secure/boot.bin": files["secure/boot.bin"]})
    secure_broken = tmd({"secure-broken/x.bin": files["secure-broken/x.bin"]})

    top = delegs([
        role("esp32-role", ["delegate-esp32"], paths=["esp32/*"]),
        role("hashed-role", ["delegate-hashed"], prefixes=[prefix]),
        role("w800-terminating", ["delegate-w800-term"], terminating=True, paths=["w800/*"]),
        role("w800-later", ["delegate-w800-later"], paths=["w800/*"]),
        role("shared-a", ["delegate-shared"], paths=["shared/*"]),
        role("shared-b", ["delegate-shared-b"], paths=["shared/*"]),
        role("secure-role", ["delegate-secure-1", "delegate-secure-2"], threshold=2, paths=["secure/*"]),
        role("secure-broken", ["delegate-secure-1", "delegate-secure-2"], threshold=2, paths=["secure-broken/*"]),
    ], ["delegate-esp32", "delegate-hashed", "delegate-w800-term", "delegate-w800-later", "delegate-shared",
        "delegate-shared-b", "delegate-secure-1", "delegate-secure-2"])

    delegated = [
        Delegated("esp32-role", esp32, [key("delegate-esp32")]),
        Delegated("esp32-boards", boards, [key("delegate-boards")]),
        Delegated("esp32-board-s3", s3, [key("delegate-s3")]),
        Delegated("hashed-role", hashed, [key("delegate-hashed")]),
        Delegated("w800-terminating", w_term, [key("delegate-w800-term")]),
        Delegated("w800-later", w_later, [key("delegate-w800-later")]),
        Delegated("shared-a", shared_a, [key("delegate-shared")]),
        Delegated("shared-a-term", shared_a_term, [key("delegate-shared")]),
        Delegated("shared-a-child", shared_a_child, [key("delegate-shared")]),
        Delegated("shared-b", shared_b, [key("delegate-shared-b")]),
        Delegated("secure-role", secure, [key("delegate-secure-1"), key("delegate-secure-2")]),
        Delegated("secure-broken", secure_broken, [key("delegate-secure-1")]),
    ]
    repo = build_repo(targets={"readme.txt": (README, None, ["sha256"])}, delegations=top, delegated=delegated)
    # target files of delegated roles
    for label, data in files.items():
        path = label.split("#")[0]
        h = hashlib.sha256(data).hexdigest()
        parent, _, name = path.rpartition("/")
        repo.targets[f"{parent}/{h}.{name}"] = data
    write_scenario(
        "delegations",
        repo,
        description="top-level targets delegates, in order: esp32-role [esp32/*] -> esp32-boards [esp32/board-*] -> "
        f"esp32-board-s3 [esp32/board-s3*] (nested 3 levels); hashed-role path_hash_prefixes ['{prefix}']; "
        "w800-terminating [w800/*, terminating] then w800-later [w800/*] (shadowed); shared-a [shared/*] -> "
        "(shared-a-term [shared/t*, terminating], shared-a-child [shared/*]) then shared-b [shared/*]; "
        "secure-role [secure/*] threshold 2 (both sign); secure-broken [secure-broken/*] threshold 2, one signature",
        targets={
            "readme.txt": "ok",
            "esp32/app.bin": "ok",
            "esp32/board-c3.bin": "ok",
            "esp32/board-s3.bin": "ok",
            "esp32/projectMM/2.1.0.bin": "absent",
            "hashed/fw-a.bin": "ok",
            "hashed/fw-b.bin": "absent",
            "w800/app_ota.img": "ok",
            "w800/only-in-later.img": "absent",
            "shared/lib.bin": "ok",
            "shared/tool.bin": "absent",
            "secure/boot.bin": "ok",
            "secure-broken/x.bin": {"error": "threshold", "role": "secure-broken"},
            "nowhere/none.bin": "absent",
        },
        extra={
            "notes": {
                "esp32/projectMM/2.1.0.bin": "listed in esp32-role, but its delegation pattern 'esp32/*' does not "
                "match across '/' (spec >=1.0.20 glob semantics; ngclient matches fnmatch per '/'-separated "
                "segment and requires equal segment counts) -> no role is trusted for it",
                "hashed/fw-a.bin": f"sha256('hashed/fw-a.bin') = {ha} starts with '{prefix}'",
                "hashed/fw-b.bin": f"sha256('hashed/fw-b.bin') = {hb} does not start with '{prefix}'; listed in "
                "hashed-role but not delegated to it",
                "w800/app_ota.img": "both w800-terminating and w800-later list it with DIFFERENT content; the "
                f"terminating role comes first and wins: sha256 {hashlib.sha256(files['w800/app_ota.img#terminating']).hexdigest()}",
                "w800/only-in-later.img": "only in w800-later, but w800-terminating (earlier, terminating, "
                "matching) stops the search",
                "shared/lib.bin": "found only by backtracking: shared-a (empty) -> shared-a-child (empty) -> "
                "shared-b",
                "shared/tool.bin": "shared-a delegates shared/t* to the TERMINATING shared-a-term (empty): the "
                "whole search stops there, shared-b (which lists it) is never consulted",
                "secure-broken/x.bin": "the spec (5.6.7 note) says 'end the search and report that the target "
                "cannot be found' when delegated metadata cannot be validated; ngclient raises "
                "UnsignedMetadataError. Either way the target must not be returned",
            },
            "expected_sha256": {
                "w800/app_ota.img": hashlib.sha256(files["w800/app_ota.img#terminating"]).hexdigest(),
            },
        },
    )


# --------------------------------------------------------------------------
# Canonical JSON vectors
# --------------------------------------------------------------------------


def canonical_vectors() -> list[dict]:
    inputs: list[tuple[Any, str]] = [
        ({}, "empty object"),
        ([], "empty array"),
        ("", "empty string"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (0, "zero"),
        (-0, "negative zero integer is 0"),
        (-1, "negative"),
        (123456789, "int"),
        (2**31, "2^31"),
        (2**32 + 1, "2^32+1"),
        (2**53, "2^53 (largest exactly representable double boundary)"),
        (-(2**53), "-2^53"),
        (2**53 - 1, "2^53-1"),
        ({"b": 1, "a": 2, "c": {"z": [3, 2, 1], "y": None}}, "nested objects with unsorted keys; arrays keep order"),
        ({"z": 1, "Z": 2, "a": 3, "A": 4, "_": 5, "0": 6}, "ASCII key order: '0' < 'A' < 'Z' < '_' < 'a' < 'z'"),
        ({"é": 1, "z": 2, "Z": 3, "e": 4}, "U+00E9 sorts after ASCII"),
        ({"\u00ff": 1, "\u0100": 2, "z": 3}, "U+00FF < U+0100"),
        ({"\U0001F600": 1, "\uffff": 2, "\ufb01": 3, "a": 4},
         "emoji U+1F600 (UTF-16 D83D DE00) vs U+FFFF/U+FB01: by code point/UTF-8 bytes the emoji sorts LAST; by "
         "UTF-16 code units it would sort before U+FB01 and U+FFFF"),
        ({"\ue000": 1, "\U00010000": 2}, "U+E000 < U+10000 by code point; reversed in UTF-16 (D800 < E000)"),
        ({"a\u0000b": 1, "a": 2, "ab": 3}, "key containing NUL: 'a' < 'a\\u0000b' < 'ab'"),
        ({"e\u0301": 1, "\u00e9": 2},
         "decomposed e+U+0301 and precomposed U+00E9 are DIFFERENT keys (no Unicode normalization); "
         "Swift String == treats them as equal - do not key a Swift Dictionary by String"),
        ('quote " here', "double quote escaped as \\\""),
        ("back\\slash", "backslash escaped as \\\\"),
        ('both \\" mixed', "backslash then quote"),
        ("line\nfeed\ttab\rcr", "control chars are emitted RAW (not escaped) in OLPC canonical JSON"),
        ("\u0001\u001f\u007f", "U+0001, U+001F, U+007F raw"),
        ("nul\u0000inside", "NUL raw"),
        ("/slash/ not escaped", "forward slash not escaped"),
        ("non-ASCII: é ü ß € 中文 😀", "non-ASCII emitted as raw UTF-8, never \\u-escaped"),
        ("\u2028\u2029", "U+2028/U+2029 raw"),
        ([1, "two", [3, {"four": 4}], True, None, False, -5], "mixed array"),
        ({"signed": {"_type": "targets", "version": 1}, "signatures": []}, "metadata-like"),
        ({"keytype": "ed25519", "scheme": "ed25519",
          "keyval": {"public": "0000000000000000000000000000000000000000000000000000000000000000"}},
         "key dict as hashed for keyids"),
        ({"custom": {"format": "esp32-app", "hardware": "esp32", "version": "2.1.0", "project": "projectMM"}},
         "target custom field"),
        ({"A": {"b": {"C": {"d": {}}}}}, "deep nesting"),
        ({"k": ""}, "empty string value"),
    ]
    out = []
    for value, note in inputs:
        canon = encode_canonical(value)
        assert canon is not None
        out.append({"input": value, "canonical_b64": base64.b64encode(canon.encode("utf-8")).decode(), "note": note})
    # every 'signed' part served by the basic scenario
    for f in sorted((HERE / "basic" / "server" / "metadata").iterdir()):
        md = Metadata.from_bytes(f.read_bytes())
        signed_dict = json.loads(f.read_bytes())["signed"]
        canon = encode_canonical(signed_dict).encode("utf-8")
        assert canon == md.signed_bytes
        out.append({
            "input": reverse_keys(signed_dict),  # deliberately NOT in canonical key order
            "canonical_b64": base64.b64encode(canon).decode(),
            "note": f"'signed' of basic/server/metadata/{f.name}; signatures in that file are over exactly these bytes",
            "source": f"basic/server/metadata/{f.name}",
        })
    return out


def write_canonical() -> None:
    vectors = canonical_vectors()
    # keep one vector per line for reviewable diffs
    # no sort_keys: the inputs keep their (deliberately unsorted) key order in the file text
    lines = [json.dumps(v) for v in vectors]
    (HERE / "canonical.json").write_text("[\n" + ",\n".join(lines) + "\n]\n")
    # self-check: parsing back yields identical canonical bytes
    for v in json.loads((HERE / "canonical.json").read_text()):
        assert encode_canonical(v["input"]).encode() == base64.b64decode(v["canonical_b64"])


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def main() -> int:
    versions = {"tuf": tuf.__version__, "securesystemslib": securesystemslib.__version__,
                "cryptography": cryptography.__version__}
    if versions != EXPECTED_VERSIONS:
        print(f"warning: running with {versions}, fixtures were made with {EXPECTED_VERSIONS}", file=sys.stderr)

    for old in HERE.iterdir():
        if old.is_dir() and (old / "server").is_dir():
            shutil.rmtree(old)

    s_basic()
    s_keytypes()
    s_not_consistent()
    s_cached()
    s_root_rotation()
    s_expired()
    s_rollback()
    s_mix_and_match()
    s_signatures()
    s_keyids()
    s_legacy_ecdsa()
    s_targets_attacks()
    s_limits()
    s_delegations()
    write_public_keys()

    config = UpdaterConfig()
    failures = []
    for name in SCENARIOS:
        obs = run_ngclient(name, config)
        RESULTS[name] = obs
        SCENARIOS[name]["ngclient"] = summarize(obs)
        problems = check(name, obs)
        div = SCENARIOS[name].get("divergence")
        if problems and not div:
            failures.append((name, problems))
        if div and not problems:
            failures.append((name, ["marked as divergence but ngclient agrees with the spec expectation"]))
        if div and problems:
            mismatch = check(name, obs, div["ngclient"])
            if mismatch:
                failures.append((name, ["ngclient outcome differs from the documented divergence", *mismatch]))
        status = "DIVERGES (documented)" if problems and div else ("FAIL" if problems else "ok")
        print(f"{name:38s} {status}")
        for p in problems:
            print(f"    {p}")

    lines = [f"{json.dumps(n)}: {json.dumps(SCENARIOS[n], sort_keys=True, ensure_ascii=False)}" for n in SCENARIOS]
    (HERE / "scenarios.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")
    (HERE / "ngclient-results.json").write_text(
        json.dumps({"versions": versions, "config": vars(config) | {"envelope_type": str(config.envelope_type)},
                    "scenarios": RESULTS}, indent=1, sort_keys=True, default=str) + "\n")
    write_canonical()

    if failures:
        print("\nUNEXPECTED ngclient outcomes:", file=sys.stderr)
        for n, p in failures:
            print(f"  {n}: {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        sys.exit(2)
