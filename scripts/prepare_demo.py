"""Put the demo corpus (SMS Spam Collection) in place for the spaCy project.

Usage: python scripts/prepare_demo.py DATA [ZIP]

DATA is the project's `data` variable. When it is the demo file, this unpacks ZIP (fetched by
`spacy project assets`) into it, adding the header line "Label<TAB>SMS", or checks a copy that
was put there by hand; either way the file's sha256 must match the known one. When DATA is any
other file, there is nothing to prepare beyond checking that it exists.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path

DEMO = Path("assets/SMSSpamCollection.tsv")
DEMO_SHA256 = "fae7ea7d915ef73903e5c2f46ffa2f4a39909a574e20fda4f2b81f7cb1e15e1f"
DEFAULT_ZIP = Path("assets/smsspamcollection.zip")
HEADER = b"Label\tSMS\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unpack(zip_path: Path, dest: Path) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        data = archive.read("SMSSpamCollection")
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as out:
        out.write(HEADER + data)
    os.replace(tmp, dest)


def main(data: str, zip_path: str = str(DEFAULT_ZIP)) -> int:
    data_path = Path(data)
    if data_path.resolve() != DEMO.resolve():
        if not data_path.exists():
            print(f"Error: the data file {data_path} does not exist (set --vars.data).")
            return 1
        print(f"Using {data_path}; the demo corpus is not needed.")
        return 0
    if not DEMO.exists():
        if not Path(zip_path).exists():
            print(
                f"Error: {DEMO} is missing. Run `spacy project assets` (needs internet), or copy "
                f"SMSSpamCollection.tsv (tab-separated, header Label<TAB>SMS) to {DEMO}."
            )
            return 1
        unpack(Path(zip_path), DEMO)
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
