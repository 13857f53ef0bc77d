"""The four networks of the method and the 2D -> 3D lifter (Keras 3 subclassed models).

- `PosePredictor` (f_kp): ResNet + SimpleBaseline head, raw RGB [0, 255] -> heatmaps.
- `StyleNet` (f_sty): AdaIN restyling, ALADIN-style style codes.
- `WarpingModule` (W): keypoints -> region-wise displacement field and occlusion map.
- `Generator` (G): base image + displacement + occlusion -> driving image.
- `Lifter`: normalised 2D keypoints -> root-relative 3D pose.

Every model is registered with Keras (`package="synpose_keras"`), so
`keras.models.load_model(path)` reloads it without `custom_objects` once this package is
imported.
"""

from synpose_keras.models.generator import Generator
from synpose_keras.models.lifter import Lifter
from synpose_keras.models.pose_predictor import PosePredictor
from synpose_keras.models.style_net import StyleNet
from synpose_keras.models.warping_module import WarpingModule

__all__ = ["Generator", "Lifter", "PosePredictor", "StyleNet", "WarpingModule"]
