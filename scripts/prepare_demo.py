"""Put the demo corpus (SMS Spam Collection) in place for the spaCy project.

Usage: python scripts/prepare_demo.py DATA [ZIP]

DATA is the project's `data` variable. When it is the demo file, this unpacks the copy shipped
with the project (demo/SMSSpamCollection.tsv.gz, CC BY 4.0, see demo/README.md) into it, so the
main job runs without network; failing that, ZIP (fetched by `spacy project assets`), adding
the header line "Label<TAB>SMS". A copy put there by hand is kept. Either way the file's sha256
must match the known one. When DATA is any other file, there is nothing to prepare beyond
checking that it exists.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path

DEMO = Path("assets/SMSSpamCollection.tsv")
DEMO_SHA256 = "fae7ea7d915ef73903e5c2f46ffa2f4a39909a574e20fda4f2b81f7cb1e15e1f"
DEFAULT_ZIP = Path("assets/smsspamcollection.zip")
SHIPPED = Path(__file__).resolve().parents[1] / "demo" / "SMSSpamCollection.tsv.gz"
HEADER = b"Label\tSMS\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unpack(zip_path: Path, dest: Path) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        data = archive.read("SMSSpamCollection")
    write_atomic(dest, HEADER + data)


def unpack_shipped(dest: Path) -> None:
    write_atomic(dest, gzip.decompress(SHIPPED.read_bytes()))


def write_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(data: str, zip_path: str = str(DEFAULT_ZIP)) -> int:
    data_path = Path(data)
    if data_path.resolve() != DEMO.resolve():
        if not data_path.exists():
            print(f"Error: the data file {data_path} does not exist (set --vars.data).")
            return 1
        print(f"Using {data_path}; the demo corpus is not needed.")
        return 0
    if not DEMO.exists():
        if SHIPPED.exists():
            unpack_shipped(DEMO)
            print(f"Unpacked the demo corpus shipped in {SHIPPED.parent.name}/ (CC BY 4.0).")
        elif Path(zip_path).exists():
            unpack(Path(zip_path), DEMO)
        else:
            print(
                f"Error: {DEMO} is missing, and so is the copy shipped in {SHIPPED}. Run "
                "`spacy project assets` (needs internet), or copy SMSSpamCollection.tsv "
                f"(tab-separated, header Label<TAB>SMS) to {DEMO}."
            )
            return 1
    found = sha256(DEMO)
    if found != DEMO_SHA256:
        print(
            f"Error: {DEMO} has sha256 {found}, not {DEMO_SHA256}: it is not the expected SMS "
            "Spam Collection file. Replace it, or set --vars.data to your own file."
        )
        return 1
    print(f"{DEMO} is in place (sha256 checked).")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
