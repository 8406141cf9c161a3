#!/usr/bin/env bash
# Set up .venv with everything the project, its tests and its desktop app need. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: 2.13.0 is the CPU wheel this project is tested with; an unpinned
# torch would pull a several-GB CUDA build. On a GPU machine, install a CUDA build of torch
# before running this script (the pin then keeps it if it is 2.13.0, else set TORCH_SPEC).
.venv/bin/python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install --quiet -e ".[gui,project,test]"
.venv/bin/python -c "import spacy_bertcls, torch, spacy; print('spacy-bertcls', spacy_bertcls.__version__, '| spaCy', spacy.__version__, '| torch', torch.__version__)"
