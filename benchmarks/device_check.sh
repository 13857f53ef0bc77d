#!/usr/bin/env bash
# Issue #21 item 4: the PoseResNet-101 training step (forward + backward + Adam, batch 32, 256² input,
# 21 keypoints) under Keras 3's JAX backend against the PyTorch peer, fp32 and bf16, on a lent
# accelerator machine; prints one markdown table. No TensorFlow, nothing from the network: Keras
# comes from the wheel in benchmarks/wheels/ (fill it beforehand with benchmarks/device_wheels.sh,
# and name that folder in the device run's carry list), synpose_keras from this tree (PYTHONPATH).
#
#   bash benchmarks/device_check.sh                      # the issue's figure, under 8 minutes
#   SYNPOSE_DC_BATCH=2 SYNPOSE_DC_SIZE=64 SYNPOSE_DC_BACKBONE=resnet18 SYNPOSE_DC_REPS=2 \
#     SYNPOSE_DC_WARMUP=1 bash benchmarks/device_check.sh   # the CPU test's size
#
# Environment (defaults in brackets):
#   PYTHON [python3]                 the interpreter that holds JAX (and PyTorch)
#   SYNPOSE_DC_BATCH [32], SYNPOSE_DC_SIZE [256], SYNPOSE_DC_KEYPOINTS [21],
#   SYNPOSE_DC_BACKBONE [resnet101], SYNPOSE_DC_REPS [20], SYNPOSE_DC_WARMUP [3]
#   SYNPOSE_DC_PRECISIONS ["fp32 bf16"], SYNPOSE_DC_FRAMEWORKS ["keras pytorch"] (where PyTorch
#                                    is missing, its rows say so and the exit status is 1)
#   SYNPOSE_DC_PART_TIMEOUT [150]    seconds for one part (one framework, one precision)
#   SYNPOSE_DC_BUDGET [460]          seconds for the whole script; a part gets what is left
#   SYNPOSE_DC_WHEELS [benchmarks/wheels]
#   SYNPOSE_DC_KERAS [wheel]         "installed": use the interpreter's own Keras (no wheel)
#   SYNPOSE_DC_RESULT [benchmarks/results/device_check.json]; copied to $OUT too when set
# Exit status: 0 when every part gave a time, 1 when one failed or timed out, 2 on a setup error.
set -uo pipefail
PY=${PYTHON:-python3}
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac
cd "$(dirname "$0")/.." || exit 2
REPO=$(pwd)
BUDGET=${SYNPOSE_DC_BUDGET:-460}
PART_TIMEOUT=${SYNPOSE_DC_PART_TIMEOUT:-150}
WHEELS=${SYNPOSE_DC_WHEELS:-benchmarks/wheels}
RESULT=${SYNPOSE_DC_RESULT:-benchmarks/results/device_check.json}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/device_check.XXXXXX")
SITE="$WORK/site"
PARTS="$WORK/parts.jsonl"
LOG="$WORK/parts.log"
trap 'rm -rf "$WORK"' EXIT  # the parts' log is copied to $OUT (when set) before this
export KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3} PYTHONUNBUFFERED=1

fail_setup() { echo "device_check: $*" >&2; exit 2; }

# --- 1. Keras from the carried wheel, offline (pip --no-index; a plain unzip if pip is absent)
install_wheel() {  # install_wheel WHEEL_OR_NAME
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
      --target "$SITE" --find-links "$WHEELS" "$1"
  else
    case "$1" in
      *.whl) "$PY" -m zipfile -e "$1" "$SITE" ;;
      *) "$PY" - "$WHEELS" "$1" "$SITE" <<'EOF'
import pathlib, platform, sys, zipfile
wheels, name, site = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
cp = f"cp{sys.version_info[0]}{sys.version_info[1]}"
for w in sorted(wheels.glob(f"{name}-*.whl")):
    pys, abis, plats = (t.split(".") for t in w.name[:-4].split("-")[-3:])
    if (cp in pys or "py3" in pys) and (
            "any" in plats or any(q.endswith(platform.machine()) for q in plats)):
        zipfile.ZipFile(w).extractall(site)
        break
else:
    sys.exit(f"no wheel of {name} in {wheels} fits this interpreter")
EOF
      ;;
    esac
  fi
}
mkdir -p "$SITE"
if [ "${SYNPOSE_DC_KERAS:-wheel}" = installed ]; then
  "$PY" -c "import keras" 2>/dev/null || fail_setup "SYNPOSE_DC_KERAS=installed but $PY has no keras"
  echo "keras: the interpreter's own ($("$PY" -c 'import keras; print(keras.__version__)'))"
else
  KERAS_WHEEL=$(ls "$WHEELS"/keras-*.whl 2>/dev/null | sort -V | tail -n 1)
  [ -n "$KERAS_WHEEL" ] || fail_setup "no keras wheel in $WHEELS: run 'bash benchmarks/device_wheels.sh' \
where pip reaches PyPI, and carry that folder to the device (benchmarks/README.md)"
  install_wheel "$KERAS_WHEEL" || fail_setup "could not install $KERAS_WHEEL"
  for dep in namex optree; do  # Keras requirements the device image lacks; others it has
    "$PY" -c "import $dep" 2>/dev/null || install_wheel "$dep" || fail_setup "could not install $dep"
  done
  echo "keras: $(basename "$KERAS_WHEEL") installed offline into $SITE"
fi
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import keras, synpose_keras.models, synpose_keras.ops, sys
assert keras.backend.backend() == 'jax', keras.backend.backend()
assert 'tensorflow' not in sys.modules
print('keras', keras.__version__, 'from', keras.__file__.rsplit('/keras/', 1)[0])" \
  || fail_setup "keras or synpose_keras does not import with KERAS_BACKEND=jax"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L

# --- 2. one process per part, each under its own time limit, within the whole budget
status=0
for precision in ${SYNPOSE_DC_PRECISIONS:-fp32 bf16}; do
  for framework in ${SYNPOSE_DC_FRAMEWORKS:-keras pytorch}; do
    left=$((BUDGET - SECONDS - 10))
    limit=$((left < PART_TIMEOUT ? left : PART_TIMEOUT))
    if [ "$limit" -lt 5 ]; then
      echo "{\"framework\": \"$framework\", \"precision\": \"$precision\", \"error\": \"not run: budget spent\"}" >>"$PARTS"
      status=1; continue
    fi
    if [ "$framework" = pytorch ] && ! "$PY" -c "import torch" 2>/dev/null; then
      echo "{\"framework\": \"pytorch\", \"precision\": \"$precision\", \"error\": \"not run: torch does not import\"}" >>"$PARTS"
      echo "== pytorch $precision: not run, torch does not import"
      status=1; continue
    fi
    echo "== $framework $precision (limit ${limit} s)"
    timeout -k 5 "$limit" "$PY" benchmarks/device_step.py --framework "$framework" \
      --precision "$precision" --out "$PARTS" >>"$LOG" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ]; then
      status=1
      reason="rc $rc"; [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && reason="timed out after ${limit} s"
      echo "{\"framework\": \"$framework\", \"precision\": \"$precision\", \"error\": \"$reason\"}" >>"$PARTS"
      echo "   failed ($reason); the end of its output:"; tail -n 15 "$LOG" | sed 's/^/   | /'
    fi
  done
done

# --- 3. the table
echo
"$PY" benchmarks/device_step.py --table "$PARTS" --result "$RESULT" || status=1
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$RESULT" "$LOG" "$OUT"/ 2>/dev/null
fi
echo "total ${SECONDS} s"
exit "$status"
