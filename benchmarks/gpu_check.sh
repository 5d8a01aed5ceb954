#!/usr/bin/env bash
# xpnet on a CUDA GPU, in one command of under 8 minutes: the test suite on CuPy and on
# torch-CUDA, then the GPU benchmarks, with a short markdown report.
#
#   benchmarks/gpu_check.sh [--cpu] [REPORT]
#
#   here, with a package index:     benchmarks/gpu_wheels.sh       (fills .whl/, ~11 MiB)
#   there, on the GPU machine:      benchmarks/gpu_check.sh "$OUT/gpu-report.md"
#
# REPORT defaults to $OUT/gpu-report.md when $OUT is set, else ./gpu-report.md.  Beside it
# go the full logs: gpu-tests-cupy.log, gpu-tests-torch.log, gpu-bench.log, and the
# benchmark's own gpu-bench.md and gpu-bench.json.
#
# Made for a machine that reaches no package index: it runs that machine's own python3
# (or $PYTHON), whose NumPy, SciPy, CuPy, PyTorch and JAX are used as they are.  What it
# may lack comes as wheels in .whl/ at the repository root, carried with the checkout
# (benchmarks/gpu_wheels.sh downloads them, elsewhere): they are installed, without
# dependencies or network, into $XPNET_GPU_SITE (default /tmp/xpnet-site, emptied first;
# with pip, else by unpacking them, which is all these wheels need),
# skipping any wheel that does not fit this Python and any of NumPy, SciPy, CuPy, torch,
# JAX, nvidia-* or triton, and that folder goes first on PYTHONPATH, followed by the
# repository: xpnet itself is pure Python and runs from the checkout, uninstalled.
#
# Steps, each under `timeout` (SIGINT first, so that pytest still prints its summary and
# slowest tests), within $XPNET_GPU_BUDGET seconds in all (default 460):
#   1. install the wheels; report versions and the device (nvidia-smi, the CUDA driver);
#      with no usable CUDA device, write a report saying so and exit 0 (unless --cpu);
#   2. XPNET_TEST_BACKEND=cupy  python -m pytest   (at most $XPNET_GPU_CUPY_S, default 120 s)
#   3. XPNET_TEST_BACKEND=torch python -m pytest   (at most $XPNET_GPU_TORCH_S, default 120 s;
#      the tests' torch device is CUDA whenever torch sees one)
#   4. python -m benchmarks --only paths,launches,gpu --rounds 2  (the time left, near 190 s,
#      sections in that order, so that the one never run on a device comes first:
#      paths (meant to take under 90 s, not yet timed on a GPU): every fused CuPy kernel
#      checked against its NumPy twin on the device, the launches measured by torch.profiler
#      and the host against the device time by cupyx.profiler, W1 and W2 on CuPy's fused and
#      portable steps and torch-CUDA's fast and portable steps side by side; launches: the
#      launches counted on the CPU; gpu: W1 on CuPy, torch-CUDA and JAX-GPU against NumPy;
#      where a CuPy pass spends its time; W2 on 2,000,000 rows against a cuBLAS peak).
# The suites had 140 s each before the paths section came; 120 s leaves it its time.
# If step 4 is stopped at its budget, the report shows the end of its log, where the tables
# printed so far are.
# Each suite runs as $XPNET_GPU_SHARDS pytest processes side by side (default 6; the test
# files, largest first, dealt out in turn; each process's BLAS/OpenMP threads an equal share
# of the cores), their logs one after the other in the suite's log and their counts added
# in the report.  pytest runs verbose, with plugin autoloading off (the machine's plugins
# may not match the carried pytest), --maxfail=25 and --durations=10; a suite stopped at its
# budget is reported with the tests it was running.  No test file is left out by default;
# tests/test_sklearn_suite.py (scikit-learn's own MLP tests, minutes long) skips itself
# off NumPy.  $XPNET_GPU_PYTEST_ARGS adds pytest arguments (for example
# "--ignore=tests/test_import.py"), $XPNET_GPU_BENCH_ARGS replaces "--rounds 2".
#
# --cpu runs every step even without a CUDA device (the CuPy suite then skips its backend
# tests, torch runs on the CPU, the benchmarks run $XPNET_GPU_BENCH_ARGS, by default
# --quick --only paths,w1,gpu, where paths checks the kernels through a CPU stand-in and
# sets the CPU's paths side by side): a check of this script's plumbing on any machine.
#
# Exit status: 0 when every step that ran passed (or no device was found), 1 otherwise.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
PY=${PYTHON:-python3}
CPU=0
REPORT=""
for arg in "$@"; do
  case $arg in
    --cpu) CPU=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $arg (see --help)" >&2; exit 2 ;;
    *) REPORT=$arg ;;
  esac
done
REPORT=${REPORT:-${OUT:+$OUT/}gpu-report.md}
DIR=$(dirname "$REPORT")
mkdir -p "$DIR"
TOTAL=${XPNET_GPU_BUDGET:-460}
SITE=${XPNET_GPU_SITE:-/tmp/xpnet-site}
STATUS=0
# pytest processes per suite, side by side, and the threads each may use
SHARDS=${XPNET_GPU_SHARDS:-6}
THREADS=$(( $(nproc) / SHARDS > 0 ? $(nproc) / SHARDS : 1 ))

say() { printf '%s\n' "$*" >> "$REPORT"; }
budget() {  # seconds for a step wanting $1: no more than what is left, less a reserve
  local left=$(( TOTAL - SECONDS - 15 ))
  if (( $1 > 0 && $1 < left )); then echo "$1"; else echo $(( left > 10 ? left : 10 )); fi
}

: > "$REPORT"
say "# xpnet GPU check"
say ""
say "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git describe --always --dirty 2>/dev/null || echo '?'), \`benchmarks/gpu_check.sh $*\`"
say ""

# -- 1. wheels, environment, device -----------------------------------------------------
say "## Environment"
say ""
shopt -s nullglob
WHEELS=(.whl/*.whl)
USE=()
if (( ${#WHEELS[@]} )); then
  while read -r verdict path reason; do
    if [[ $verdict == use ]]; then USE+=("$path"); else say "- wheel skipped: $path ($reason)"; fi
  done < <("$PY" - "${WHEELS[@]}" <<'EOF'
import os, sys
try:
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename
except ImportError:
    from pip._vendor.packaging.tags import sys_tags
    from pip._vendor.packaging.utils import parse_wheel_filename
KEEP = ("numpy", "scipy", "cupy", "torch", "jax", "jaxlib", "triton", "nvidia-", "jax-")
supported = set(sys_tags())
for path in sys.argv[1:]:
    name, _, _, tags = parse_wheel_filename(os.path.basename(path))
    if name in KEEP or name.startswith(KEEP[-2:]) or name.startswith("cupy-"):
        print("skip", path, "the machine's own build stays in use")
    elif not tags & supported:
        print("skip", path, "not built for this Python and platform")
    else:
        print("use", path)
EOF
  )
  rm -rf "$SITE"
  if (( ${#USE[@]} )); then
    if "$PY" -m pip --version > /dev/null 2>&1; then
      timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" "${USE[@]}" > "$DIR/gpu-pip.log" 2>&1
    else  # a Python without pip: these wheels need no build step, so unpacking installs them
      "$PY" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' \
        "$SITE" "${USE[@]}" > "$DIR/gpu-pip.log" 2>&1
    fi
    if (( $? == 0 )); then
      say "- installed into $SITE: $(printf '%s ' "${USE[@]##*/}")"
    else
      say "- **installing the wheels failed**: $(tail -3 "$DIR/gpu-pip.log" | tr '\n' ' ')"
      STATUS=1
    fi
  else
    say "- none of the ${#WHEELS[@]} wheels in .whl/ can be installed here: using what is installed"
  fi
else
  say "- no wheels in .whl/ (benchmarks/gpu_wheels.sh downloads them): using what is installed"
fi
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX shares the GPU with CuPy and torch

DEVICES=$(timeout 120 "$PY" - <<'EOF' 2>&1
import ctypes, importlib, os, platform, sys
print(f"- python {platform.python_version()} ({sys.executable})")
for name in ("numpy", "scipy", "sklearn", "array_api_compat", "pytest", "cupy", "torch", "jax",
             "xpnet"):
    try:
        mod = importlib.import_module(name)
        where = os.path.dirname(os.path.dirname(mod.__file__))
        print(f"- {name} {getattr(mod, '__version__', '?')} ({where})")
    except Exception as exc:  # missing or broken: the report says which
        print(f"- {name}: not importable ({type(exc).__name__}: {exc})")
count = ctypes.c_int(0)
try:
    cuda = ctypes.CDLL("libcuda.so.1")
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        count.value = 0
except OSError:
    pass
try:
    import torch
    print(f"- torch sees CUDA: {torch.cuda.is_available()}")
except Exception:
    pass
try:
    import xpnet
    for name, info in xpnet.available_backends().items():
        print(f"- xpnet backend {name}: {', '.join(info.devices) or info.reason}")
except Exception as exc:
    print(f"- xpnet.available_backends() failed: {type(exc).__name__}: {exc}")
print(f"CUDA_DEVICES={count.value}")
EOF
)
say "$(grep -v '^CUDA_DEVICES=' <<< "$DEVICES")"
NDEV=$(grep -o '^CUDA_DEVICES=[0-9]*' <<< "$DEVICES" | cut -d= -f2)
NDEV=${NDEV:-0}
if command -v nvidia-smi > /dev/null; then
  say "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -4 | tr '\n' ';')"
fi
say ""

if (( NDEV == 0 && CPU == 0 )); then
  say "**No usable CUDA device** (the CUDA driver reports none): no test or benchmark was run."
  say "Run with --cpu to check this script's plumbing on the CPU."
  echo "no CUDA device; report: $REPORT"
  cat "$REPORT"
  exit 0
fi
(( NDEV == 0 )) && say "**No CUDA device: --cpu given, so every step runs on the CPU** (a plumbing check)." && say ""

# -- 2, 3. the test suite per backend ---------------------------------------------------
run_tests() {  # backend, seconds wanted
  local backend=$1 secs log rc summary
  secs=$(budget "$2")
  log="$DIR/gpu-tests-$backend.log"
  echo "tests on $backend (at most ${secs} s, $SHARDS processes) ..."
  # The test files, largest first, dealt to $SHARDS pytest processes that run side by side
  # (one GPU serves them all); each process's threads get an equal share of the cores.
  local -a files shard_rc
  local i last pids=()
  mapfile -t files < <(ls -S tests/test_*.py)
  for (( i = 0; i < SHARDS; i++ )); do
    local -a mine=()
    local j
    for (( j = i; j < ${#files[@]}; j += SHARDS )); do mine+=("${files[j]}"); done
    # shellcheck disable=SC2086  # XPNET_GPU_PYTEST_ARGS is a list of words
    XPNET_TEST_BACKEND=$backend SCIPY_ARRAY_API=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 \
      OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
      timeout -s INT -k 20 "$secs" "$PY" -m pytest -v -p no:cacheprovider --maxfail=25 \
      --durations=10 -rfE ${XPNET_GPU_PYTEST_ARGS:-} "${mine[@]}" > "$log.$i" 2>&1 &
    pids+=($!)
  done
  rc=0
  for (( i = 0; i < SHARDS; i++ )); do
    wait "${pids[i]}"
    shard_rc[i]=$?
    # the worst status wins: a stop at the budget, then failures, then anything else
    case ${shard_rc[i]} in
      124|137) rc=${shard_rc[i]} ;;
      0|5) ;;  # 5: none of this process's tests selected (the report says if none ran at all)
      *) (( rc == 124 || rc == 137 )) || rc=${shard_rc[i]} ;;
    esac
  done
  local lines="" running=""
  for (( i = 0; i < SHARDS; i++ )); do
    lines+=$(grep -E '(passed|failed|errors?|skipped|no tests ran|deselected)\b.* in [0-9.]+s' \
      "$log.$i" | tail -1)$'\n'
    last=$(grep -E '^tests/' "$log.$i" | tail -1)
    if [[ -n $last && ! $last =~ (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS) ]]; then
      running+=" ${last%% *}"
    fi
  done
  for (( i = 0; i < SHARDS; i++ )); do
    printf '==== process %d of %d: exit %d\n' "$((i + 1))" "$SHARDS" "${shard_rc[i]}"
    cat "$log.$i"
  done > "$log"
  rm -f "$log".[0-9]*
  # the counts of every process's last line ("3 failed, 120 passed, 4 skipped in 20.1s"), added
  summary=$("$PY" -c '
import re, sys
counts = {}
for line in sys.stdin:
    for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)", line):
        word = "error" if word.startswith("error") else word
        counts[word] = counts.get(word, 0) + int(number)
print(", ".join(f"{n} {w}" for w, n in counts.items()))' <<< "$lines")
  summary="${summary:+$summary (the script at ${SECONDS} s)}"
  say "## Tests, XPNET_TEST_BACKEND=$backend"
  say ""
  [[ $rc == 0 && -z $summary ]] && rc=5
  case $rc in
    0) say "Passed: $summary" ;;
    124|137)
      say "**Stopped at its time budget of ${secs} s** (what ran: ${summary:-nothing reported})"
      [[ -n $running ]] && say "while running$running"
      STATUS=1 ;;
    1) say "**Failures**: $summary"; STATUS=1 ;;
    5) say "**No tests collected**"; STATUS=1 ;;
    *) say "**pytest exited with $rc**: ${summary:-$(tail -3 "$log" | tr '\n' ' ')}"; STATUS=1 ;;
  esac
  say ""
  if grep -qE '^(FAILED|ERROR) ' "$log"; then
    say '```'
    say "$(grep -E '^(FAILED|ERROR) ' "$log" | head -25 | cut -c1-300)"
    say '```'
    say ""
  fi
  if grep -q 'slowest' "$log"; then
    say "Slowest:"
    say ""
    say '```'
    say "$(grep -E '^[0-9.]+s (call|setup|teardown) ' "$log" | sort -rn | head -10)"
    say '```'
    say ""
  fi
  say "Full log: $(basename "$log")"
  say ""
  echo "  $backend: rc $rc, ${summary:-no summary}"
}
run_tests cupy "${XPNET_GPU_CUPY_S:-120}"
run_tests torch "${XPNET_GPU_TORCH_S:-120}"

# -- 4. the GPU benchmarks --------------------------------------------------------------
if (( NDEV == 0 )); then
  read -r -a BENCH <<< "${XPNET_GPU_BENCH_ARGS:---quick --only paths,w1,gpu}"
else
  read -r -a BENCH <<< "--only paths,launches,gpu ${XPNET_GPU_BENCH_ARGS:---rounds 2}"
fi
secs=$(budget 0)
echo "benchmarks ${BENCH[*]} (at most ${secs} s) ..."
rm -f "$DIR/gpu-bench.md" "$DIR/gpu-bench.json"
timeout -s INT -k 20 "$secs" "$PY" -m benchmarks "${BENCH[@]}" \
  --markdown "$DIR/gpu-bench.md" --json "$DIR/gpu-bench.json" > "$DIR/gpu-bench.log" 2>&1
rc=$?
say "## Benchmarks: python -m benchmarks ${BENCH[*]}"
say ""
if (( rc == 0 )) && [[ -s $DIR/gpu-bench.md ]]; then
  say "$(sed '1,/^Command:/d' "$DIR/gpu-bench.md")"
else
  (( rc == 124 || rc == 137 )) && say "**Stopped at its time budget of ${secs} s**; its output so far:" \
    || say "**Exited with $rc**; the end of its output:"
  STATUS=1
  say ""
  say '```'
  say "$(grep -v '^  \.\.\. ' "$DIR/gpu-bench.log" | tail -200)"  # the tables printed so far
  say '```'
fi
say ""
say "Total: ${SECONDS} s of a ${TOTAL} s budget; exit status $STATUS."
echo "done in ${SECONDS} s; report: $REPORT"
cat "$REPORT"
exit $STATUS
