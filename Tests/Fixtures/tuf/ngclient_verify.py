"""Verifies a published repository with python-tuf's ngclient (the reference client).

    python3 ngclient_verify.py PUBLISHED_DIR ROOT_FILE TARGET_PATH...

PUBLISHED_DIR holds metadata/ and targets/ as `otamesh release publish` writes them. Exits 0
when refresh and every target download succeed, 1 otherwise (reason on stderr), 2 when
python-tuf is not installed.
"""
import shutil
import sys
import tempfile
from pathlib import Path
from urllib import parse

try:
    from tuf.ngclient import Updater
    from tuf.ngclient.fetcher import FetcherInterface
    from tuf.api import exceptions as tuf_exc
except ImportError:
    print("python-tuf is not installed", file=sys.stderr)
    sys.exit(2)

BASE = "http://repo.invalid/"


class DirFetcher(FetcherInterface):
    def __init__(self, root: Path):
        self.root = root

    def _fetch(self, url: str):
        rel = parse.unquote(url[len(BASE):])
        path = self.root / rel
        if not path.is_file():
            raise tuf_exc.DownloadHTTPError(f"404 Not Found: {rel}", 404)
        return iter([path.read_bytes()])


def main() -> int:
    published, root_file, targets = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    work = Path(tempfile.mkdtemp())
    try:
        (work / "metadata").mkdir()
        (work / "targets").mkdir()
        shutil.copy(root_file, work / "metadata" / "root.json")
        updater = Updater(
            metadata_dir=str(work / "metadata"), metadata_base_url=BASE + "metadata/",
            target_dir=str(work / "targets"), target_base_url=BASE + "targets/", fetcher=DirFetcher(published),
            bootstrap=root_file.read_bytes())
        updater.refresh()
        for path in targets:
            info = updater.get_targetinfo(path)
            if info is None:
                print(f"{path}: not found by ngclient", file=sys.stderr)
                return 1
            updater.download_target(info)
        print("ok")
        return 0
    except Exception as error:  # report any refusal as the reason
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
