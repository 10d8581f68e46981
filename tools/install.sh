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
#
# torchvision (mmpretrain's models import it) is installed as the release of the installed
# torch, from the index of that torch's build (PyPI; https://download.pytorch.org/whl/<build>
# for a torch such as 2.13.0+cpu). When none loads, it is left out with a warning: configs
# that import mmpretrain's models then fail naming torchvision and the command to install it.
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
import mmcv, mmengine, mmdet, mmseg, mmpretrain, torch, pycocotools, sklearn, pytest, xdist, mmkd
import skimage
from mmcv.ops import nms, RoIAlign  # compiled ops must be present
try:
    import mmpretrain.models
    backbones = 'its models import'
except ImportError as err:  # torchvision: see the warning above
    backbones = f'its models do not import: {err}'
print(f'mmkd env ok: torch {torch.__version__}, mmcv {mmcv.__version__}, '
      f'mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, '
      f'mmpretrain {mmpretrain.__version__} ({backbones}), scikit-image {skimage.__version__}')
PY
}

torchvision_loads() {
  "$venv/bin/python" -c 'import torchvision.ops' 2>/dev/null
}

# The torchvision release of the installed torch, from the index of its build
# (mmkd.utils.packages.torchvision_requirement): its compiled ops link to that torch.
install_torchvision() {
  local spec index
  read -r spec index < <(PYTHONPATH="$repo" "$venv/bin/python" -c 'import torch
from mmkd.utils.packages import torchvision_requirement
print(*(part or "" for part in torchvision_requirement(torch.__version__)))')
  if [[ -n "$spec" && -n "$index" ]]; then
    "${pip[@]}" install -q --no-deps --index-url "$index" "$spec" 2>/dev/null || true
  elif [[ -n "$spec" ]]; then
    "${pip[@]}" install -q --no-deps "$spec" || true
  fi
  if ! torchvision_loads; then
    "${pip[@]}" uninstall -y -q torchvision 2>/dev/null || true
    echo "[mmkd install] WARNING: no torchvision for this torch loads here (tried" \
      "${spec:-no known release}${index:+ from $index}). mmpretrain's models (ConvNeXt," \
      "PoolFormer ... backbones) import it: install the torchvision build of your torch," \
      "e.g. pip install ${spec:-torchvision}${index:+ --index-url $index}" >&2
  fi
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

echo "[mmkd install] mmengine, mmdet, mmsegmentation, mmpretrain, scikit-image, pycocotools," \
  "test tools, mmkd (editable)"
"${pip[@]}" install -q -r "$repo/requirements/runtime.txt" -r "$repo/requirements/tests.txt"
if ! torchvision_loads; then  # after the requirements: it needs pillow, which they bring
  echo "[mmkd install] torchvision (the release of the installed torch)"
  install_torchvision
fi
"${pip[@]}" install -q --no-build-isolation --no-deps -e "$repo"

check_imports
echo "$fingerprint" > "$stamp"
