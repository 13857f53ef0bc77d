"""(child process of test_opencv_kernels) Builds a source pipeline, takes batches, exits.

``python -m tests.datasets.exit_child FOLDER BATCHES [--no-guard]``. The iterator is still alive
(and its workers busy) when the interpreter exits; ``--no-guard`` unregisters the library's
``atexit`` guard to show what it prevents.
"""

import atexit
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from synpose_keras.datasets import source_pipeline  # noqa: E402
from synpose_keras.datasets.pipeline import opencv_kernels  # noqa: E402

folder, batches = sys.argv[1], int(sys.argv[2])
ds = source_pipeline(folder, input_size=256, heatmap_size=64, batch_size=8, seed=0)
if "--no-guard" in sys.argv:
    atexit.unregister(opencv_kernels.release_live_iterators)
it = iter(ds)
for _ in range(batches):
    next(it)
print("batches taken", flush=True)
