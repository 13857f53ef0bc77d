"""`convert frames --boxes FILE`: one record per detected box (its 1.5 x square crop), frames
without a box left out."""

import json

import numpy as np
from PIL import Image

from synpose_keras.datasets import convert, load_records
from synpose_keras.datasets.converters.frames import FramesConverter


def test_frames_with_boxes(tmp_path):
    src = tmp_path / "clips"
    (src / "seq1").mkdir(parents=True)
    for i in range(3):
        image = np.zeros((90, 120, 3), np.uint8)
        image[40:50, 60 + 5 * i:70 + 5 * i] = (255, 0, 0)
        Image.fromarray(image).save(src / "seq1" / f"{i}.png")
    boxes = {"seq1/0.png": [{"bbox": [60, 40, 10, 10], "score": 0.9},
                            {"bbox": [0, 0, 20, 30], "score": 0.6},
                            {"bbox": [5, 5, 5, 5], "score": 0.1}],
             "1": [[65, 40, 10, 10]]}  # by stem (a COCO image_id)
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    conv = FramesConverter(str(src), boxes=str(tmp_path / "boxes.json"))
    items = conv.items("train")
    assert [it.source_id for it in items] == ["seq1/0.png#box=0", "seq1/0.png#box=1",
                                              "seq1/1.png#box=0"]
    record = items[0].load()
    assert record.image.shape == (15, 15, 3) and record.sequence == "seq1#box0"
    assert record.image[:, :, 0].mean() > 100  # the red block fills the crop's middle
    assert items[1].load().image.shape == (45, 45, 3)
    meta = convert(conv, str(tmp_path / "out"), progress=False, image_format="png")
    assert meta["counts"] == {"train": 3}
    assert meta["converter"]["frames_without_boxes"] == 1
    records = list(load_records(str(tmp_path / "out"), "train"))
    assert {r["sequence"].numpy().decode() for r in records} == {"seq1#box0", "seq1#box1"}
