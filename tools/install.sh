#!/usr/bin/env bash
# Creates .venv in the repository and installs mmkd with everything it needs.
#
# Idempotent: when .venv already holds what the current requirements ask for,
# it checks the imports and installs nothing.
#
# Environment knobs:
#   MMKD_VENV=DIR        where the virtual environment lives (default: <repo>/.venv)
#   MMKD_PYTHON=PY       interpreter used to create it (default: python3)
#   MMKD_TORCH_SPEC=SPEC torch requirement (default: torch==2.13.0). Users with their own
#                        CUDA build can set e.g. MMKD_TORCH_SPEC=torch (or keep an installed one
#                        with MMKD_TORCH_SPEC=skip).
#   MAX_JOBS=N           parallel compile jobs for mmcv's ops (default: 2)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MMKD_VENV:-$repo/.venv}"
python="${MMKD_PYTHON:-python3}"
torch_spec="${MMKD_TORCH_SPEC:-torch==2.13.0}"
export MAX_JOBS="${MAX_JOBS:-2}"

# One fingerprint of everything that decides what gets installed.
fingerprint="$(cat "$repo/tools/install.sh" "$repo/requirements/runtime.txt" \
  "$repo/requirements/tests.txt" "$repo/setup.py" | sha256sum | cut -d' ' -f1)-$torch_spec"
stamp="$venv/.mmkd-install-stamp"

check_imports() {
  "$venv/bin/python" - <<'PY'
import mmcv, mmengine, mmdet, mmseg, torch, pycocotools, sklearn, pytest, xdist, mmkd
from mmcv.ops import nms, RoIAlign  # compiled ops must be present
print(f'mmkd env ok: torch {torch.__version__}, mmcv {mmcv.__version__}, '
      f'mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}')
PY
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$fingerprint" ]] && check_imports 2>/dev/null; then
  exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
  echo "[mmkd install] creating virtual environment at $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

if [[ "$torch_spec" != skip ]]; then
  echo "[mmkd install] $torch_spec"
  "${pip[@]}" install -q "$torch_spec" 'numpy<2'
fi

if ! "$venv/bin/python" -c 'import mmcv, mmcv.ops; assert mmcv.__version__ == "2.1.0"' 2>/dev/null; then
  echo "[mmkd install] mmcv==2.1.0 with compiled ops (first build takes ~7 min on 2 cores; cached after)"
  # mmcv 2.1.0's setup.py needs setuptools < 70; only for this build (runtime.txt pins the
  # setuptools that mmengine and torch need at run time).
  "${pip[@]}" install -q 'setuptools<70' wheel
  MMCV_WITH_OPS=1 "${pip[@]}" install --no-build-isolation 'mmcv==2.1.0' 'numpy<2'
fi

echo "[mmkd install] mmengine, mmdet, mmsegmentation, pycocotools, test tools, mmkd (editable)"
"${pip[@]}" install -q -r "$repo/requirements/runtime.txt" -r "$repo/requirements/tests.txt"
"${pip[@]}" install -q --no-build-isolation --no-deps -e "$repo"

check_imports
echo "$fingerprint" > "$stamp"
