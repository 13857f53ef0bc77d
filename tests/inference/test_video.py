"""`synpose predict MODEL clip.mp4 --out DIR`: keypoints per frame (JSON lines) and an overlay
video, on a short generated clip with a moving block; --every N."""

import json

import numpy as np
from typer.testing import CliRunner

from tests.cli.inference_helpers import block_model


def _clip(path, frames=6, size=(96, 64)):
    """A clip whose frame i shows an 8x8 red block at x = 10 + 8 i, y = 20."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.zeros((size[1], size[0], 3), np.uint8)
            image[20:28, 10 + 8 * i:18 + 8 * i] = (255, 0, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_video_round_trip(tmp_path):
    import av

    from synpose_keras.cli.app import app

    model = block_model(21)
    model.save(tmp_path / "block.keras")
    clip = _clip(tmp_path / "clip.mp4")
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "block.keras"), str(clip),
                                      "--out", str(tmp_path / "out"), "--every", "2",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "out" / "clip.jsonl").read_text().splitlines()
    header, rows = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert header["every"] == 2 and header["width"] == 96 and header["skeleton"] == "hand21"
    assert [row["frame"] for row in rows] == [0, 2, 4]
    for row in rows:
        x, y = np.asarray(row["keypoints"]).mean(0)
        # the block's centre (13.5 + 8 i, 23.5) within the letterbox's resolution (96 -> 64 px)
        assert abs(x - (13.5 + 8 * row["frame"])) < 5 and abs(y - 23.5) < 5, row["frame"]
    with av.open(str(tmp_path / "out" / "clip.overlay.mp4")) as video:
        frames = list(video.decode(video=0))
    assert len(frames) == 3 and max(frames[0].width, frames[0].height) >= 512
