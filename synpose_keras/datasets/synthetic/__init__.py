"""The embedded synthetic -> real pose benchmark (no download).

Procedural 3D hands (Hand21) and bodies (Body16) with bone proportions and joint limits
(``hand_model``, ``body_model``), pinhole cameras (``camera``), a numpy rasteriser (``render``),
two appearance domains (``domains``), scene generation (``scene_generator``) and the two-dataset
writer entry point ``generate_benchmark`` (``benchmark``). See ``datasets/synthetic.md``.
"""

from synpose_keras.datasets.synthetic.benchmark import DEFAULT_SIZES, generate_benchmark  # noqa: F401
