#!/usr/bin/env bash
# Download, on a machine with access to the package index, the wheels that gpu_check.sh's model
# benchmark needs beyond torch (mmengine, mmseg, mmpretrain, mmcv-lite and the small packages
# they import), to carry them to an offline GPU machine:
#
#   bash tools/analysis_tools/gpu_check_wheels.sh [DIR] [--python-version 3.10]
#   # there: GPU_CHECK_WHEELS=DIR bash tools/analysis_tools/gpu_check.sh
#
# DIR defaults to .gpu_wheels (git-ignored). Versions as requirements/ci.txt pins them; no
# dependencies are resolved (--no-deps), and large packages a GPU image usually has (numpy,
# scipy, opencv, Pillow, torchvision) are left out: about 11 MB. Wheels with compiled parts
# (PyYAML, regex, wcwidth) are taken for --python-version (default: this Python's) on
# manylinux x86-64, the device machine's platform.
set -eu
DIR=.gpu_wheels
PYVER=
while [ $# -gt 0 ]; do
  case $1 in
    --python-version) PYVER=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) DIR=$1; shift ;;
  esac
done
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
PYVER=${PYVER:-$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
pin() {  # the version requirements/ci.txt pins, else none
  grep -i "^$1==" requirements/ci.txt || echo "$1"
}
mkdir -p "$DIR"
# pure Python
"$PY" -m pip download -q --no-deps -d "$DIR" \
  "$(pin mmengine)" "$(pin mmsegmentation)" "$(pin mmpretrain)" "$(pin mmcv-lite)" \
  "$(pin ftfy)" addict yapf termcolor rich markdown-it-py mdurl pygments einops modelindex \
  ordered-set prettytable markdown platformdirs tifffile filelock
# compiled, for the device's Python
"$PY" -m pip download -q --no-deps -d "$DIR" --only-binary=:all: \
  --platform manylinux2014_x86_64 --python-version "$PYVER" "$(pin regex)" pyyaml wcwidth
du -sh "$DIR"
echo "carry $DIR to the GPU machine and run: GPU_CHECK_WHEELS=$DIR bash tools/analysis_tools/gpu_check.sh"
