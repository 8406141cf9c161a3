"""Install the wheel that `spacy package` built and check that the pipeline loads and predicts.

Usage: python scripts/check_package.py PACKAGES_DIR NAME VERSION

The wheel goes into a folder of its own (PACKAGES_DIR/site), not into the environment, so the
check leaves the environment as it was; `pip install` the wheel to use the package for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def main(packages: str, name: str, version: str) -> int:
    wheels = sorted(Path(packages).glob(f"*_{name}-{version}/dist/*.whl"))
    if not wheels:
        print(f"Error: no wheel for {name} {version} under {packages}; run `spacy package` first.")
        return 1
    wheel = wheels[-1]
    lang_name = wheel.name.split("-")[0]
    site = (Path(packages) / "site").resolve()
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--upgrade", "-q"]
    subprocess.run([*pip, "--target", str(site), str(wheel)], check=True)
    code = (
        "import spacy, json; "
        f"nlp = spacy.load({lang_name!r}); "
        "doc = nlp('Free entry! Text WIN to claim your prize now'); "
        "print(json.dumps(doc.cats))"
    )
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print(f"Error: the packaged pipeline {lang_name} does not load:\n{out.stderr}")
        return 1
    print(f"Built {wheel.name}; spacy.load({lang_name!r}) works: {out.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
