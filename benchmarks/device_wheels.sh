#!/usr/bin/env bash
# Fills benchmarks/wheels/ (git-ignored) with the wheels that benchmarks/device_check.sh installs
# offline on a lent accelerator machine, whose image has JAX, PyTorch, numpy, h5py, absl-py,
# rich, ml-dtypes and packaging but neither Keras nor TensorFlow, and reaches no package index:
#
#   - keras (the version installed in this environment, or $KERAS_VERSION): pure Python;
#   - namex (pure Python) and optree (compiled: one wheel per Python version, 3.10-3.13, x86_64),
#     the two Keras requirements that image lacks. device_check.sh installs them only where they
#     do not import, taking the wheel that fits the interpreter.
#
# Run it here, with network access, before asking for the device run (about 3 MB in all):
#
#   bash benchmarks/device_wheels.sh
#
# The folder is ignored by git, so a device run must name it in its carry list
# (benchmarks/README.md, "Accelerator check").
set -euo pipefail
PY=${PYTHON:-python3}
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac
cd "$(dirname "$0")"
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null; }
KERAS_VERSION=${KERAS_VERSION:-$(version keras || true)}
OPTREE_VERSION=${OPTREE_VERSION:-$(version optree || true)}
if [ -z "$KERAS_VERSION" ]; then
  echo "no keras installed for $PY: set KERAS_VERSION (e.g. KERAS_VERSION=3.15.1)" >&2
  exit 2
fi
mkdir -p wheels
"$PY" -m pip download -q --no-deps --only-binary=:all: -d wheels "keras==$KERAS_VERSION" namex
for pyver in 3.10 3.11 3.12 3.13; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d wheels \
    "optree${OPTREE_VERSION:+==$OPTREE_VERSION}"
done
ls -l wheels
