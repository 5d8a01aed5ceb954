#!/usr/bin/env bash
# Download, on a machine with a package index, the wheels that a GPU machine without one
# needs to run xpnet's tests and benchmarks (benchmarks/gpu_check.sh) with its own Python.
#
#   benchmarks/gpu_wheels.sh [NAME==VERSION ...]
#
# The GPU machine is expected to have Python 3.12 with NumPy, SciPy, CuPy, PyTorch and JAX
# (and matplotlib and pandas, for the tests that use them) already installed; those are
# never downloaded here, so that the machine's own builds, matched to its CUDA, stay in
# use.  What it may lack, or have in another version than the one xpnet is tested with
# here, is downloaded into the git-ignored folder .whl/ at the repository root (emptied
# first; a .whl/.gitignore of "*" keeps it out of git), as cp312 manylinux x86_64 or
# pure-Python wheels, without dependencies:
#
#   array-api-compat   xpnet's one hard dependency besides NumPy (not on such machines)
#   array-api-strict   the tests' portability referee
#   scikit-learn       xpnet's estimators and the tests compare against this very version
#   joblib, threadpoolctl, narwhals   scikit-learn's own requirements
#   tqdm               xpnet's progress bar
#   pytest, pluggy, iniconfig         the test runner (its other needs, packaging and
#                                     pygments, are left to the machine)
#
# Each version is the one installed in the Python that runs this script (activate the
# project's virtual environment first), else the fallback pinned below.  Extra
# NAME==VERSION arguments are downloaded too (for example scipy==1.17.1, about 35 MiB, if a
# machine lacks SciPy).  The script prints the wheels and their total size; carry .whl/
# with the checkout.  Needs: python3 with pip, and the network.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=.whl

declare -A FALLBACK=(
  [array-api-compat]=1.16.0
  [array-api-strict]=2.6.1
  [scikit-learn]=1.9.1
  [joblib]=1.6.0
  [threadpoolctl]=3.8.0
  [narwhals]=2.29.0
  [tqdm]=4.70.1
  [pytest]=9.2.0
  [pluggy]=1.7.0
  [iniconfig]=2.3.1
)
NAMES=(array-api-compat array-api-strict scikit-learn joblib threadpoolctl narwhals tqdm
       pytest pluggy iniconfig)

version_of() {  # the version installed in $PY, or the fallback pin
  "$PY" - "$1" <<'EOF' 2>/dev/null || echo "${FALLBACK[$1]}"
import importlib.metadata as m, sys
print(m.version(sys.argv[1]))
EOF
}

SPECS=()
for name in "${NAMES[@]}"; do
  SPECS+=("$name==$(version_of "$name")")
done
SPECS+=("$@")

mkdir -p "$DEST"
printf '*\n' > "$DEST/.gitignore"
rm -f "$DEST"/*.whl

for spec in "${SPECS[@]}"; do
  case "${spec%%[=<>!~ ]*}" in
    numpy|scipy|cupy*|torch*|jax|jaxlib|jax-*|nvidia-*|triton)
      if [[ "${spec%%[=<>!~ ]*}" != scipy ]]; then
        echo "refusing $spec: the GPU machine's own build must stay in use" >&2
        continue
      fi ;;
  esac
  echo "downloading $spec"
  "$PY" -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 \
    -d "$DEST" "$spec"
done

echo
echo "wheels in $DEST/:"
(cd "$DEST" && ls -l --block-size=K -- *.whl | awk '{print "  " $5 "  " $9}')
echo "total: $(du -ch "$DEST"/*.whl | tail -1 | cut -f1)"
