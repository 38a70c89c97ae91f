#!/usr/bin/env bash
# mmdet 3.3 needs mmcv 2.0/2.1 WITH compiled ops, and no registry wheel of it matches recent torch. This
# builds mmcv 2.1.0 from its sdist (sha256-checked, patched: mmcv-2.1.0.patch) against the venv's torch,
# once per torch version and device, into a cache folder, then installs it with mmdet and mmengine.
#   usage: install.sh VENV_PYTHON CACHE_DIR      (FORCE_CUDA=1 on a machine with nvcc builds the CUDA ops)
set -euo pipefail
PY=${1:?usage: install.sh VENV_PYTHON CACHE_DIR}
CACHE=${2:?usage: install.sh VENV_PYTHON CACHE_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
URL=https://files.pythonhosted.org/packages/a7/19/f97f0fd4d432113a232e75f965335be6b7bb6557ae9faf8051e9a012cadd/mmcv-2.1.0.tar.gz
SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f

torch_version=$("$PY" -c "import torch; print(torch.__version__)")
# mmcv's setup.py builds CUDA ops when torch sees a GPU or FORCE_CUDA=1; the cache says which it built
device=$("$PY" -c "import os, torch; print('cuda' if torch.cuda.is_available() or os.getenv('FORCE_CUDA') == '1' else 'cpu')")
WHEELS="$CACHE/torch-$torch_version-$device"  # the wheel links this torch's libraries

# mmdet's requirements, and mmengine's with the headless OpenCV in place of opencv-python (which needs
# libGL); OpenCV 4.12+ needs numpy 2, and compressai pins numpy < 2
"$PY" -m pip install --quiet -r "$HERE/requirements.txt"

if ! compgen -G "$WHEELS/mmcv-2.1.0-*.whl" >/dev/null; then
  echo "building mmcv 2.1.0 with compiled $device ops against torch $torch_version (about 5 min on 2 cores)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  curl -sSfL --retry 3 -o "$work/mmcv-2.1.0.tar.gz" "$URL"
  echo "$SHA256  $work/mmcv-2.1.0.tar.gz" | sha256sum --check --quiet
  tar -xzf "$work/mmcv-2.1.0.tar.gz" -C "$work"
  patch --quiet -d "$work/mmcv-2.1.0" -p1 <"$HERE/mmcv-2.1.0.patch"
  # --no-build-isolation: the build must see the installed torch (without it mmcv silently skips its ops).
  # CFLAGS replaces Python's default flags, so it restates -O3 -DNDEBUG; -g0 keeps the wheel small.
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" CFLAGS="-DNDEBUG -fwrapv -O3 -g0" \
    "$PY" -m pip wheel --quiet --no-build-isolation --no-deps -w "$work/dist" "$work/mmcv-2.1.0"
  mkdir -p "$WHEELS"
  mv "$work"/dist/mmcv-2.1.0-*.whl "$WHEELS/"
fi

# --no-deps: their requirements came from requirements.txt (mmengine's would pull opencv-python back in)
"$PY" -m pip install --quiet --no-deps "$WHEELS"/mmcv-2.1.0-*.whl mmengine==0.10.7 mmdet==3.3.0
"$PY" -c "import mmcv.ops, mmdet; print('mmdet', mmdet.__version__, 'with mmcv', mmcv.__version__, 'ops')"
