"""Using a trained model: evaluation, prediction on images, export for serving, run reports.

- :func:`evaluate_model`: PCK@0.05 in the Table-A layout (``synpose evaluate``).
- :func:`predict_images`: keypoints of image files in original pixels + overlays
  (``synpose predict``).
- :func:`predict_video`: keypoints per frame of a video (JSON lines) + an overlay video
  (``synpose predict MODEL clip.mp4``).
- :func:`export_model`: TensorFlow SavedModel or TFLite artefact (``synpose export``).
- :func:`make_report`: figures and a markdown summary of a run (``synpose report``).

Example:

```python
from synpose_keras.inference import evaluate_model, predict_images
print(evaluate_model("runs/hand", "data/h3d")["table"])
predict_images("runs/hand", ["photo.jpg"], "predictions/")
```
"""

from synpose_keras.inference.evaluate import evaluate_model
from synpose_keras.inference.export import export_model
from synpose_keras.inference.loading import load_pose_model, resolve_model_path
from synpose_keras.inference.predict import ImageReadError, predict_arrays, predict_images
from synpose_keras.inference.report import make_report
from synpose_keras.inference.video import VideoReadError, predict_video

__all__ = [
    "ImageReadError",
    "VideoReadError",
    "predict_video",
    "evaluate_model",
    "export_model",
    "load_pose_model",
    "make_report",
    "predict_arrays",
    "predict_images",
    "resolve_model_path",
]
