"""PCK metrics and part-group tables (protocol: docs/protocol.md, "Evaluation protocol").

Example:

```python
from synpose_keras.metrics import pck, part_group_table, format_table
from synpose_keras.skeletons import HAND21

result = pck(pred, gt, visible, threshold=0.05, heatmap_size=64)   # (N, K, 2) heatmap pixels
print(format_table({"ours": part_group_table(result.per_keypoint, HAND21)}, HAND21))
```
"""

from synpose_keras.metrics.inversions import InversionResult
from synpose_keras.metrics.inversions import inversions
from synpose_keras.metrics.pck import PCKResult
from synpose_keras.metrics.pck import heatmap_argmax
from synpose_keras.metrics.pck import pck
from synpose_keras.metrics.pck import pck_from_heatmaps
from synpose_keras.metrics.pck_accumulator import PCKAccumulator
from synpose_keras.metrics.pck_metric import PCKMetric
from synpose_keras.metrics.table import format_table
from synpose_keras.metrics.table import part_group_table
from synpose_keras.metrics.table import table_to_markdown

__all__ = [
    "InversionResult",
    "PCKAccumulator",
    "PCKMetric",
    "PCKResult",
    "format_table",
    "heatmap_argmax",
    "inversions",
    "part_group_table",
    "pck",
    "pck_from_heatmaps",
    "table_to_markdown",
]
