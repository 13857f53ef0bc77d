"""Plain Keras inference with a trained synpose-keras model: no synpose command, no tf.data.

    python examples/keras_inference.py RUN/pose_predictor.keras photo.jpg --out photo_pose.png

Steps: load the model with ``keras.models.load_model``; pad the image to a square (keeping its
aspect ratio) and resize it to the model's input size; ``model.predict`` gives heatmaps; decode
them with ``synpose_keras.ops.HeatmapCodec`` (argmax of each heatmap refined to sub-pixel
precision with DARK, Zhang et al., CVPR 2020, as ``synpose predict`` does; times the stride); map
the keypoints back to the original image's pixels; draw them.

The model takes raw RGB in [0, 255] (uint8 or float), NHWC: its normalisation is built in.
Coordinates use pixel centres at integers, so the square of side ``max(W, H)`` holding the image
maps onto the input by ``x_in = (x + pad_x + 0.5) * S / side - 0.5``.
"""

import argparse
import json

import keras
import numpy as np
from PIL import Image

import synpose_keras.models  # noqa: F401  registers the model classes for load_model
from synpose_keras.ops import HeatmapCodec
from synpose_keras.skeletons import SKELETONS
from synpose_keras.viz import draw_keypoints


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a .keras file, e.g. RUN/pose_predictor.keras")
    parser.add_argument("image", help="an image file (any size)")
    parser.add_argument("--out", default="keypoints.png", help="overlay PNG to write")
    args = parser.parse_args(argv)

    # 1. the model: input (B, S, S, 3) RGB [0, 255] -> heatmaps (B, S/4, S/4, K)
    model = keras.models.load_model(args.model)
    size = int(getattr(model, "input_size", None) or model.input_shape[1])

    # 2. the image, padded to a centred square and resized to S x S
    image = Image.open(args.image).convert("RGB")
    width, height = image.size
    side = max(width, height)
    pad_x, pad_y = (side - width) // 2, (side - height) // 2
    square = Image.new("RGB", (side, side))
    square.paste(image, (pad_x, pad_y))
    batch = np.asarray(square.resize((size, size), Image.Resampling.BILINEAR))[None]

    # 3. heatmaps -> keypoints in input pixels (DARK-refined argmax x stride; decoding="argmax"
    #    for the PCK protocol's integer cells) -> original pixels
    heatmaps = model.predict(batch, verbose=0)
    codec = HeatmapCodec(size, heatmaps.shape[1])
    keypoints, scores = codec.decode(heatmaps, decoding="dark")
    keypoints = np.asarray(keypoints)[0]
    scores = np.asarray(scores)[0]
    keypoints = (keypoints + 0.5) * side / size - 0.5 - np.array([pad_x, pad_y])

    # 4. draw (the skeleton follows from the number of keypoints: 21 hand, 16 body)
    skeleton = next(s for s in SKELETONS.values() if s.num_keypoints == len(keypoints))
    radius = max(2.0, side / 150)
    draw_keypoints(image, keypoints, skeleton, scores=scores, radius=radius).save(args.out)
    print(json.dumps({"skeleton": skeleton.name, "keypoints": keypoints.round(2).tolist(),
                      "scores": scores.round(4).tolist(), "overlay": args.out}))


if __name__ == "__main__":
    main()
