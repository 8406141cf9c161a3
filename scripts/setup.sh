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
# fast: onnxruntime and onnx, for `bertcls optimize` and its tests (wheels from PyPI, ~40 MB).
# ray: Ray Data, for `bertcls label --engine ray` and its tests (about 240 MB installed).
.venv/bin/python -m pip install --quiet -e ".[gui,project,test,fast,ray]"
.venv/bin/python -c "import spacy_bertcls, torch, spacy; print('spacy-bertcls', spacy_bertcls.__version__, '| spaCy', spacy.__version__, '| torch', torch.__version__)"

# The desktop app (`bertcls gui`) on X11 needs system libraries that pip cannot install. They
# are only named here, never installed: this script needs no root and no network beyond pip,
# and `spacy project run all` does not need them (the GUI tests run offscreen: EGL/GL only).
# Keep the list in step with XCB_LIBRARIES / XCB_PACKAGES in spacy_bertcls_gui/app.py.
if [ "$(uname -s)" = Linux ]; then
    ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
    if [ -x "$ldconfig" ]; then
        # Captured first: `ldconfig -p | grep -q` can fail under pipefail when grep exits early.
        cache=$("$ldconfig" -p 2>/dev/null || true)
        missing=""
        for lib in libxcb-cursor.so.0 libxkbcommon-x11.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1 \
            libxcb-image.so.0 libxcb-render-util.so.0 libxcb-shape.so.0 libEGL.so.1 libGL.so.1; do
            case "$cache" in
                *"$lib "*) ;;
                *) missing="$missing $lib" ;;
            esac
        done
        if [ -n "$missing" ]; then
            sudo=""
            [ "$(id -u)" -eq 0 ] || sudo="sudo "
            echo "Note: the desktop app (bertcls gui) will not start on X11: missing${missing}."
            echo "      On Debian/Ubuntu install them with:"
            echo "      ${sudo}apt-get install -y libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libegl1 libgl1"
            echo "      Training, labeling and evaluating (spacy project run all) work without them."
            echo "      Headless, the app and its tests run with QT_QPA_PLATFORM=offscreen, which needs"
            echo "      only libEGL and libGL of these."
        fi
    fi
fi
