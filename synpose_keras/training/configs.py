"""Typed run configuration: one dataclass per component, presets, and command-line overrides.

Every run writes its resolved configuration (``RUN/config.json``) next to its checkpoints, so a
run can be resumed or reproduced from that file alone.

Presets:

- ``paper``: the paper's configuration (ResNet-101, 256 -> 64 heatmaps, batch 32 + 32, the
  UniFrame schedule of 40 pre-training + 30 adaptation epochs x 500 iterations, Adam 1e-4 with
  x0.1 at epochs 45 and 60, EMA 0.999). Meant for GPUs.
- ``demo``: small ResNet and small images so the whole pipeline runs on a 2-core CPU.
- ``tiny``: the smallest configuration that exercises every stage; for tests.

Overrides use dotted paths: ``adapt.lr=3e-4``, ``model.backbone=resnet50``,
``adapt.pseudo=union``. Values are parsed with the field's type.

Reference:
    UniFrame (Kim et al., ECCV 2022) and TLlib settings, docs/protocol.md, "Comparison methods";
    the stages and presets: docs/training.md.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Optional

PSEUDO_MODES = ("integrated", "independent", "union", "2d", "3d", "none")
METHODS = ("ours", "source-only", "uniframe", "ccssl", "regda", "oracle")
STAGES = ("style", "pretrain", "generator", "adapt")
TASKS = ("hand", "body")
STRATEGIES = ("default", "mirrored", "multiworker")
#: Base/driving partner rules of the reconstruction pairs; the same tuple as
#: ``synpose_keras.datasets.pipeline.pairs.PAIR_MODES`` (not imported: configs stay free of
#: TensorFlow).
PAIR_MODES = ("same-view", "any")
#: Region-mask priors of the warping module; the same tuple as
#: ``synpose_keras.models.warping_module.MASK_PRIORS`` (not imported, as above).
MASK_PRIORS = ("none", "gaussian", "analytic")


@dataclasses.dataclass
class ModelConfig:
    """Pose predictor architecture.

    Args:
        backbone: str. "resnet101" (paper), "resnet50" or "resnet18" (small, ours).
        input_size: int. Square input side; heatmaps are input_size / 4.
        width_multiplier: float. Channel multiplier of "resnet18".
        deconv_filters: int. Channels of the SimpleBaseline deconvolution head.
        backbone_weights: optional str. None, "imagenet" or a path to a local weights file.
        output_stride: int. Backbone stride (32; 16 or 8 for resnet18 on small inputs).
        num_deconv_layers: int. SimpleBaseline deconvolutions (heatmap stride =
            output_stride / 2**num_deconv_layers).
    """

    backbone: str = "resnet18"
    input_size: int = 64
    width_multiplier: float = 0.25
    deconv_filters: int = 64
    backbone_weights: Optional[str] = None
    output_stride: int = 32
    num_deconv_layers: int = 3

    @property
    def heatmap_stride(self) -> int:
        return self.output_stride // 2 ** self.num_deconv_layers

    @property
    def heatmap_size(self) -> int:
        return self.input_size // self.heatmap_stride


@dataclasses.dataclass
class StyleConfig:
    """AdaIN style network (stage ``style``). UniFrame: Adam 1e-5, batch 4, style weight 0.1.

    Args:
        encoder_weights: optional str. VGG-19 weights for the frozen encoder (a local
            ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``); None leaves it random.
        min_quality: float. Restyling (pre-training of ``ours`` and UniFrame, UniFrame's
            adaptation) is switched off, with a message, when the trained StyleNet's content
            preservation (:meth:`StyleNet.content_preservation`, the Sobel-edge correlation
            between source images and their restyling, written to ``RUN/style/quality.json``)
            is below this: such images no longer show the pose their labels describe. 0 always
            restyles.
    """

    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-4
    style_weight: float = 0.1
    width_multiplier: float = 0.25
    encoder_weights: Optional[str] = None
    min_quality: float = 0.3


@dataclasses.dataclass
class AugmentSettings:
    """Training augmentation of the source images and of the student's target view.

    Defaults are UniFrame's (Kim et al., ECCV 2022; docs/protocol.md, "Comparison methods").
    The teacher's target view is never augmented.

    Args:
        rotation: optional float. Rotation range in degrees; None: 180 for hands, 60 for bodies.
        shear: float. Shear range in degrees.
        translate: float. Translation range as a fraction of the input size.
        scale_min, scale_max: float. Zoom factor range (> 1 zooms in).
        color_jitter: float. Brightness, contrast and saturation jitter.
        flip_prob: optional float. Horizontal flip probability; None: 0 for hands, 0.5 for bodies.
    """

    rotation: Optional[float] = None
    shear: float = 30.0
    translate: float = 0.05
    scale_min: float = 0.6
    scale_max: float = 1.3
    color_jitter: float = 0.25
    flip_prob: Optional[float] = None

    def to_augment_config(self):
        from synpose_keras.datasets.pipeline import AugmentConfig

        return AugmentConfig(rotation=self.rotation, shear=self.shear, translate=self.translate,
                             scale=(self.scale_min, self.scale_max),
                             color_jitter=self.color_jitter, flip_prob=self.flip_prob)


@dataclasses.dataclass
class PretrainConfig:
    """Source pre-training with restyling (stage ``pretrain``)."""

    epochs: int = 4
    iterations: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    restyle_prob: float = 0.5
    # Epochs at which the pre-training rate drops x0.1 (TLlib's step schedule: 1e-3, then x0.1
    # at 45 and 60 of 70 epochs). Applies to the pre-training of every method.
    lr_milestones: tuple = ()


@dataclasses.dataclass
class GeneratorConfig:
    """Warping module + generator pre-training (stage ``generator``). FOMM: Adam 2e-4, (0.5, 0.999)."""

    epochs: int = 2
    iterations: int = 100
    batch_size: int = 16
    lr: float = 2e-4
    block_expansion: int = 16
    max_features: int = 128
    num_blocks: int = 3
    num_residual_blocks: int = 2
    vgg_weights: Optional[str] = None
    # Generator output: "blend" (warped base image at full resolution, blended by the occlusion
    # map with the decoder's image) or "decoder" (the decoder's image alone); models.Generator.
    output_mode: str = "blend"
    # Region-mask prior of the warping module (models.WarpingModule): "none" (FOMM's learned
    # mask, the paper's W; the paper preset), "gaussian" (learned logits plus log-Gaussians at the
    # driving keypoints) or "analytic" (the log-Gaussians' softmax alone at full resolution, W
    # learns only the occlusion map; the default of the small presets, because their short
    # generator schedule does not teach a learned mask to beat copying: docs/results.md).
    mask_prior: str = "analytic"
    # Variance of W's keypoint Gaussians, normalised units ([-1, 1] across the image): the
    # analytic regions' size (3 standard deviations from every keypoint is background).
    kp_variance: float = 0.004
    # Consensus weighting of W's keypoint regions (models.WarpingModule `motion_consensus`),
    # normalised units, or None: a keypoint whose motion deviates by d from the keypoints' median
    # motion has its region's logit lowered by (d / motion_consensus)^2. Needs a Gaussian prior.
    motion_consensus: Optional[float] = None


@dataclasses.dataclass
class LifterConfig:
    """2D -> 3D lifter trained on the source's 3D labels."""

    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    hidden_units: int = 256
    num_blocks: int = 2
    dropout: float = 0.1


@dataclasses.dataclass
class AdaptConfig:
    """Adaptation (stage ``adapt``): ``L = L_src + lambda_pl (L_2D + L_3D) + lambda_rec L_rec``.

    Args:
        pseudo: str. Mask strategy of Table B(a): "integrated" (default), "independent",
            "union", "2d", "3d", or "none" (no pseudo-labels).
        rec: bool. Geometric reconstruction loss on base/driving pairs.
        lambda_rec: float. Weight of L_rec. The paper does not give it. 0.003: the weight at
            which L_rec's pull on a keypoint equals the pseudo-label loss's (``synpose diagnose``,
            ``lambda_rec_from_gradients``: 0.0027 on the demo run of seed 0 with the analytic
            warping module, 2026-12-07, docs/results.md). Re-measure with ``synpose diagnose``
            for other data, warping modules or VGG-19 features (another scale).
        overlap_threshold: float. M_2D/M_3D overlap (IoU) at which "integrated" switches to the
            combined mask.
        mask_fraction: float. M_2D keeps this fraction of the most confident keypoint instances
            of each batch (UniFrame: 0.5).
        agreement_px: float. M_3D: a keypoint is kept when the teacher's 2D peak and the
            kinematically corrected reprojection agree within this distance (heatmap pixels).
        pair_fallback: optional str. "affine": datasets without sequences, and (with
            ``pair_mode="same-view"``) datasets whose sequences hold a single frame per view,
            pair an image with a random affine of itself. None: refuse such targets when ``rec``
            is on.
        pair_mode: str. Partners of the base/driving pairs (stages ``generator`` and ``adapt``):
            "same-view" (default): same sequence and same camera view, another frame, so that the
            driving frame differs from the base by the subject's motion only and can be
            reconstructed from it; "any": same sequence, another frame or view (cross-view pairs,
            another viewpoint and background). Records without a view count as one view.
        pair_max_frame_gap: optional int. Largest ``|frame_base - frame_driving|`` of a pair, in
            the records' ``frame`` units (the source's frame numbers; a video sampled every 5th
            frame needs >= 5). None: any gap inside the pairing window (64 records).
        teacher_rotations: int. 1 (the paper, default): the teacher sees each target view once.
            2 or 4: its heatmaps are averaged over the view turned by 0/180 or 0/90/180/270
            degrees (multi-transform inference as in data distillation, Radosavovic et al. 2018;
            not in Lin et al.'s method), then peaks, confidences and masks are read off the
            average; the teacher forward costs that many times more. Measured on the embedded
            hand benchmark in docs/results.md.
        oracle_labels: bool. ANALYSIS ONLY, never an adaptation result: the pseudo-label
            positions are the target's stored labels (teacher view) instead of the teacher's
            peaks; masks, mapping into the student view and re-rendering are unchanged. Measures
            what the pseudo-label path gives with correct labels (needs a labelled target
            train split).
        source_only_reference: bool. After the adaptation of any adapting method, also train
            the pre-trained predictor on the source alone for the same number of iterations
            (``RUN/source_only/``) and evaluate it as the ``source-only`` row of
            ``RUN/evaluation.json``, so the run states its gain over source-only. For ``ours`` the
            continuation is this stage with the target terms off (same optimiser, learning rate,
            source batches and EMA teacher, which is evaluated); for the comparison methods it is
            ``--method source-only``'s supervised continuation.
    """

    epochs: int = 4
    iterations: int = 100
    batch_size: int = 16
    target_batch_size: int = 16
    lr: float = 3e-4
    lr_milestones: tuple = ()
    ema_decay: float = 0.99
    pseudo: str = "integrated"
    rec: bool = True
    lambda_pl: float = 1.0
    lambda_rec: float = 0.003
    overlap_threshold: float = 0.8
    mask_fraction: float = 0.5
    agreement_px: float = 2.0
    occlusion_prob: float = 0.5
    pair_fallback: Optional[str] = "affine"
    pair_mode: str = "same-view"
    pair_max_frame_gap: Optional[int] = 2
    teacher_rotations: int = 1
    oracle_labels: bool = False
    source_only_reference: bool = True


@dataclasses.dataclass
class SourceOnlyConfig:
    """``--method source-only`` (TLlib ERM): supervised source training, no restyling.

    Stage ``pretrain`` is the ERM pre-training (shared with RegDA and CC-SSL); stage ``adapt``
    continues the same supervised training for ``adapt.epochs`` x ``adapt.iterations``, so every
    method gets the same total schedule. TLlib: Adam 1e-3, 70 x 500 iterations, batch 32,
    x0.1 at epochs 45 and 60.

    Args:
        lr: float. Adam learning rate of both stages.
        lr_milestones: tuple. Epochs of the ``adapt`` continuation where the rate drops x0.1.
    """

    lr: float = 1e-3
    lr_milestones: tuple = ()


@dataclasses.dataclass
class UniFrameConfig:
    """``--method uniframe`` (Kim et al., ECCV 2022): mean teacher with AdaIN restyling both ways.

    Schedule, optimiser, batch sizes and EMA decay come from ``adapt`` (the UniFrame schedule).

    Args:
        source_restyle_prob: float. Source -> target restyling of the student's source images.
        teacher_restyle_prob: float. Target -> source restyling of the teacher's input.
        mask_fraction: float. Most confident fraction of keypoint instances kept per batch.
        lambda_c: float. Consistency loss weight.
        occlusion_prob: float. Keypoint-guided occlusion probability per target image.
        occlusion_threshold: float. Teacher confidence a keypoint needs to be occluded.
        occlusion_size: int. Side of the pasted patch at a 256-pixel input (scaled with the input).
    """

    source_restyle_prob: float = 0.5
    teacher_restyle_prob: float = 0.5
    mask_fraction: float = 0.5
    lambda_c: float = 1.0
    occlusion_prob: float = 0.5
    occlusion_threshold: float = 0.9
    occlusion_size: int = 20


@dataclasses.dataclass
class RegDAConfig:
    """``--method regda`` (Jiang et al., CVPR 2021, TLlib): adversarial regressor.

    Args:
        margin: float. Weight of the source disparity term (TLlib ``--margin``).
        trade_off: float. Weight of the disparity terms (TLlib ``--trade-off``).
        gl_max: float. Final coefficient of the warm-start gradient layer.
        gl_alpha: float. Warm-start speed.
        gl_max_iters: int. Warm-start horizon in iterations.
        lr: float. SGD rate of the heads; the feature extractor uses ``lr * feature_lr_mult``.
        feature_lr_mult: float.
        momentum: float. Nesterov momentum.
        weight_decay: float.
        lr_gamma: float. Per-iteration decay ``lr * (1 + lr_gamma * i) ** -lr_decay``.
        lr_decay: float.
        head_layers: int. Layers of the adversarial head (1: a 1x1 conv like our main head;
            TLlib uses 2 for both heads).
    """

    margin: float = 4.0
    trade_off: float = 1.0
    gl_max: float = 0.1
    gl_alpha: float = 1.0
    gl_max_iters: int = 1000
    lr: float = 0.1
    feature_lr_mult: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_gamma: float = 1e-4
    lr_decay: float = 0.75
    head_layers: int = 1


@dataclasses.dataclass
class CCSSLConfig:
    """``--method ccssl`` (Mu et al., CVPR 2020): consistency-constrained self-training.

    Args:
        lr: float. RMSprop learning rate (CC-SSL: 2.5e-4, no momentum).
        gamma: float. Weight of the target pseudo-label loss (CC-SSL ``--gamma_``: 10).
        round_epochs: int. Epochs per self-training round (labels regenerated by the round's
            frozen model; CC-SSL: every 10 epochs).
        keep_start: float. Fraction of keypoint labels kept in round 0 (CC-SSL: 0.2).
        keep_step: float. Added per round (CC-SSL: 0.2).
        keep_max: float. Largest kept fraction (CC-SSL: 0.8).
        num_transforms: int. Teacher passes averaged per image (identity + random ones; CC-SSL: 5).
        scale_factor: float. Scale jitter of the consistency transforms (CC-SSL: 0.25).
        rotation_factor: float. Rotation std in degrees, clipped at twice (CC-SSL: 30).
        color_factor: float. Per-channel gain range of the appearance changes (CC-SSL: 0.2).
        temporal: bool. Temporal consistency with a neighbouring frame where sequences exist.
        temporal_ratio: float. CC-SSL ``lambda_decay``: 0.9.
        motion_px: float. Largest accepted inter-frame motion at a 256-pixel input (CC-SSL: 15).
    """

    lr: float = 2.5e-4
    gamma: float = 10.0
    round_epochs: int = 1
    keep_start: float = 0.2
    keep_step: float = 0.2
    keep_max: float = 0.8
    num_transforms: int = 5
    scale_factor: float = 0.25
    rotation_factor: float = 30.0
    color_factor: float = 0.2
    temporal: bool = True
    temporal_ratio: float = 0.9
    motion_px: float = 15.0


@dataclasses.dataclass
class TrainConfig:
    """Everything a ``synpose train`` run needs."""

    task: str = "hand"
    method: str = "ours"
    preset: str = "demo"
    seed: int = 0
    source: Optional[str] = None
    target: Optional[str] = None
    stages: tuple = STAGES
    strategy: str = "default"
    # Mixed bfloat16 training (Keras policy "mixed_bfloat16"): True, False or "auto" (on where
    # the CPU has AVX-512 BF16 or AMX and no GPU is visible; training/precision.py). False in
    # every preset: on the demo, bfloat16 cost 2.3 points of PCK (docs/results.md).
    mixed_precision: typing.Union[bool, str] = False
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    augment: AugmentSettings = dataclasses.field(default_factory=AugmentSettings)
    style: StyleConfig = dataclasses.field(default_factory=StyleConfig)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    generator: GeneratorConfig = dataclasses.field(default_factory=GeneratorConfig)
    lifter: LifterConfig = dataclasses.field(default_factory=LifterConfig)
    adapt: AdaptConfig = dataclasses.field(default_factory=AdaptConfig)
    source_only: SourceOnlyConfig = dataclasses.field(default_factory=SourceOnlyConfig)
    uniframe: UniFrameConfig = dataclasses.field(default_factory=UniFrameConfig)
    regda: RegDAConfig = dataclasses.field(default_factory=RegDAConfig)
    ccssl: CCSSLConfig = dataclasses.field(default_factory=CCSSLConfig)

    def validate(self) -> "TrainConfig":
        _check("task", self.task, TASKS)
        _check("method", self.method, METHODS)
        _check("strategy", self.strategy, STRATEGIES)
        if not (isinstance(self.mixed_precision, bool) or self.mixed_precision == "auto"):
            raise ValueError("mixed_precision must be true, false or 'auto' (bfloat16 where the "
                             "CPU has AVX-512 BF16 or AMX). Received: "
                             f"mixed_precision={self.mixed_precision!r}")
        _check("adapt.pseudo", self.adapt.pseudo, PSEUDO_MODES)
        for stage in self.stages:
            _check("stages", stage, STAGES)
        if self.model.input_size % self.model.output_stride:
            raise ValueError(
                f"model.input_size must be a multiple of model.output_stride "
                f"({self.model.output_stride}). "
                f"Received: model.input_size={self.model.input_size}"
            )
        _check("adapt.teacher_rotations", self.adapt.teacher_rotations, (1, 2, 4))
        _check("generator.mask_prior", self.generator.mask_prior, MASK_PRIORS)
        kv = self.generator.kp_variance
        if isinstance(kv, bool) or not isinstance(kv, (int, float)) or not kv > 0:
            raise ValueError("generator.kp_variance must be a positive number (normalised "
                             f"units). Received: generator.kp_variance={kv!r}")
        mc = self.generator.motion_consensus
        if mc is not None:
            if isinstance(mc, bool) or not isinstance(mc, (int, float)) or not mc > 0:
                raise ValueError("generator.motion_consensus must be None or a positive number "
                                 f"(normalised units). Received: generator.motion_consensus={mc!r}")
            if self.generator.mask_prior == "none":
                raise ValueError(
                    "generator.motion_consensus weights the regions of a Gaussian mask prior: it "
                    "needs generator.mask_prior 'gaussian' or 'analytic'. Received: "
                    f"generator.mask_prior='none', generator.motion_consensus={mc!r}")
        if self.adapt.pair_fallback not in (None, "affine"):
            raise ValueError(
                "adapt.pair_fallback must be 'affine' or None. "
                f"Received: adapt.pair_fallback={self.adapt.pair_fallback!r}"
            )
        if self.adapt.pair_mode not in PAIR_MODES:
            raise ValueError(
                f"adapt.pair_mode must be one of {list(PAIR_MODES)}: 'same-view' pairs two frames "
                "of one camera, 'any' also pairs two cameras. "
                f"Received: adapt.pair_mode={self.adapt.pair_mode!r}"
            )
        gap = self.adapt.pair_max_frame_gap
        if gap is not None and (isinstance(gap, bool) or not isinstance(gap, int) or gap < 1):
            raise ValueError(
                "adapt.pair_max_frame_gap must be a positive int (frames between base and "
                f"driving) or None (no bound). Received: adapt.pair_max_frame_gap={gap!r}"
            )
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return _from_dict(cls, data)


def _check(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}. Received: {name}={value!r}")


def _from_dict(cls, data: dict):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        ftype = hints[field.name]
        if dataclasses.is_dataclass(ftype):
            value = _from_dict(ftype, value)
        elif ftype is tuple or typing.get_origin(ftype) is tuple:
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)


def _paper() -> TrainConfig:
    return TrainConfig(
        preset="paper",
        model=ModelConfig(backbone="resnet101", input_size=256, width_multiplier=1.0,
                          deconv_filters=256),
        style=StyleConfig(steps=20000, batch_size=4, lr=1e-5, style_weight=0.1,
                          width_multiplier=1.0),
        pretrain=PretrainConfig(epochs=40, iterations=500, batch_size=32, lr=1e-4),
        generator=GeneratorConfig(epochs=20, iterations=500, batch_size=16, lr=2e-4,
                                  block_expansion=64, max_features=512, num_blocks=5,
                                  num_residual_blocks=6, mask_prior="none",
                                  kp_variance=0.01),
        lifter=LifterConfig(epochs=200, batch_size=1024, hidden_units=1024, num_blocks=2,
                            dropout=0.25),
        adapt=AdaptConfig(epochs=30, iterations=500, batch_size=32, target_batch_size=32,
                          lr=1e-4, lr_milestones=(5, 20), ema_decay=0.999),
        source_only=SourceOnlyConfig(lr=1e-3, lr_milestones=(5, 20)),
        ccssl=CCSSLConfig(round_epochs=10),
    )


def _demo() -> TrainConfig:
    # 128 px crops, a quarter-width ResNet-18 at output stride 16 (8 x 8 features) and two
    # deconvolutions: 32 x 32 heatmaps, so PCK@0.05 is 1.6 heatmap pixels.
    # Sized so that `synpose train --task hand` (all four stages and the evaluations) finishes
    # within 10 minutes on the 2-core development CPU (measured: docs/results.md). Milder
    # augmentation than UniFrame's (rotation +-30 deg, no shear, zoom 0.8-1.3): with a few hundred
    # iterations the full +-180 deg / +-30 deg / 0.6-1.3 augmentation leaves the small network
    # further from fitting the source (source test PCK@0.05 24.2 vs 32.6 after 600 iterations,
    # target 12.6 vs 13.5; 2026-11-24).
    return TrainConfig(
        preset="demo",
        model=ModelConfig(backbone="resnet18", input_size=128, width_multiplier=0.25,
                          deconv_filters=64, output_stride=16, num_deconv_layers=2),
        augment=AugmentSettings(rotation=30.0, shear=0.0, scale_min=0.8, scale_max=1.3),
        style=StyleConfig(steps=100, batch_size=8, lr=1e-4, width_multiplier=0.25),
        pretrain=PretrainConfig(epochs=3, iterations=500, batch_size=32, lr=1e-3,
                                lr_milestones=(2,)),
        # the ERM continuation (source-only, oracle) goes on at the pre-training's last rate
        source_only=SourceOnlyConfig(lr=1e-3, lr_milestones=(0,)),
        generator=GeneratorConfig(epochs=2, iterations=40, batch_size=8),
        lifter=LifterConfig(epochs=100, batch_size=256, hidden_units=256, num_blocks=2),
        adapt=AdaptConfig(epochs=2, iterations=80, batch_size=16, target_batch_size=12,
                          lr=3e-4, ema_decay=0.99),
    )


def _tiny() -> TrainConfig:
    return TrainConfig(
        preset="tiny",
        model=ModelConfig(backbone="resnet18", input_size=64, width_multiplier=0.125,
                          deconv_filters=16),
        style=StyleConfig(steps=2, batch_size=2, width_multiplier=0.125),
        pretrain=PretrainConfig(epochs=1, iterations=2, batch_size=4),
        generator=GeneratorConfig(epochs=1, iterations=2, batch_size=2, block_expansion=4,
                                  max_features=16, num_blocks=2, num_residual_blocks=1),
        lifter=LifterConfig(epochs=1, batch_size=16, hidden_units=16, num_blocks=1),
        adapt=AdaptConfig(epochs=1, iterations=2, batch_size=2, target_batch_size=2),
        ccssl=CCSSLConfig(num_transforms=2),
    )


PRESETS = {"paper": _paper, "demo": _demo, "tiny": _tiny}


def get_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"Unknown preset. Expected one of {sorted(PRESETS)}. Received: preset={name!r}")
    return PRESETS[name]()


def apply_overrides(config: TrainConfig, overrides: dict) -> TrainConfig:
    """Returns a copy of ``config`` with dotted-path overrides applied.

    Args:
        config: TrainConfig.
        overrides: dict. ``{"adapt.lr": "3e-4", "task": "body"}``; values may be strings (parsed
            with the field's type) or already typed.
    """
    data = config.to_dict()
    for path, value in overrides.items():
        parts = path.split(".")
        node, cls = data, TrainConfig
        for part in parts[:-1]:
            if part not in node or not isinstance(node[part], dict):
                raise ValueError(f"Unknown config field. Received: {path}={value!r}")
            cls = typing.get_type_hints(cls)[part]
            node = node[part]
        leaf = parts[-1]
        hints = typing.get_type_hints(cls)
        if leaf not in hints or dataclasses.is_dataclass(hints[leaf]):
            raise ValueError(
                f"Unknown config field. Expected one of {sorted(hints)} under "
                f"{'.'.join(parts[:-1]) or 'the top level'}. Received: {path}={value!r}"
            )
        node[leaf] = _parse(hints[leaf], value, path)
    return TrainConfig.from_dict(data).validate()


def _parse(ftype, value, path):
    if not isinstance(value, str):
        return value
    origin = typing.get_origin(ftype)
    args = [a for a in typing.get_args(ftype) if a is not type(None)]
    if origin is typing.Union:  # Optional[X], Union[X, Y]: the first type that parses
        if type(None) in typing.get_args(ftype) and value.lower() in ("none", "null", ""):
            return None
        for arg in args[:-1]:
            try:
                return _parse(arg, value, path)
            except ValueError:
                pass
        return _parse(args[-1], value, path)
    try:
        if ftype is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if ftype is tuple or origin is tuple:
            items = [v for v in value.replace(" ", "").split(",") if v]
            return tuple(_number(v) for v in items)
        return ftype(value)
    except ValueError:
        raise ValueError(f"Cannot parse a value for {path} as {ftype}. Received: {path}={value!r}")


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def save_config(config: TrainConfig, path: str) -> None:
    """Writes the resolved config as JSON, atomically."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".config-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(config.to_json())
    os.replace(tmp, path)


def load_config(path: str) -> TrainConfig:
    """Reads a config written by :func:`save_config`.

    Raises:
        ValueError: the file is empty or not valid JSON (names it).
    """
    import os

    try:
        with open(path) as f:
            data = json.load(f)
    except ValueError as err:
        what = "is empty (0 bytes)" if os.path.getsize(path) == 0 else f"is not valid JSON ({err})"
        raise ValueError(
            f"{path} {what}; expected the resolved config synpose train writes there. Restore it "
            "from a copy, or start a new run with another --out."
        ) from err
    return TrainConfig.from_dict(data).validate()


# keys of RUN/config.json that record what happened to a run rather than configure it
_RECORD_KEYS = ("resume_overrides",)


def read_config_file(path: str) -> dict:
    """Reads a config file for ``synpose train --config``: JSON, or YAML when PyYAML is installed.

    The file holds the fields of ``RUN/config.json`` (all of them, as that file does, or only
    some: the others come from the preset), nested by section (``{"adapt": {"lr": 3e-4}}``) or as
    dotted keys (``{"adapt.lr": 3e-4}``). ``RUN/config.json`` itself can be passed back.

    Args:
        path: str. A ``.json`` file, or a ``.yaml``/``.yml`` file.

    Returns:
        dict ``{dotted field: value}`` (the record ``resume_overrides`` left out), for
        :func:`apply_overrides`.

    Raises:
        ValueError: the file is missing, empty, not valid JSON/YAML, not a mapping, or YAML
            without PyYAML (each message names the file and what was expected).
    """
    import os

    if not os.path.isfile(path):
        raise ValueError(f"Config file not found: {path}. Expected a JSON or YAML file with the "
                         "fields of RUN/config.json.")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.strip():
        raise ValueError(f"{path} is empty; expected a JSON or YAML mapping of config fields "
                         "(RUN/config.json is one).")
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path} is YAML; reading it needs PyYAML (pip install pyyaml, or "
                             "pip install synpose-keras[yaml]). Or pass the same fields as JSON "
                             "(RUN/config.json is one).") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"{path} is not valid YAML ({' '.join(str(err).split())})") from err
    else:
        try:
            data = json.loads(text)
        except ValueError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); expected a mapping of config "
                             "fields (RUN/config.json is one), or a .yaml file.") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of config fields (like RUN/config.json). "
                         f"Received: a {type(data).__name__}")
    fields = {k: v for k, v in data.items() if k not in _RECORD_KEYS}
    return _flatten_fields(fields, TrainConfig().to_dict())


def _flatten_fields(data: dict, template: Optional[dict], prefix: str = "") -> dict:
    """Nested sections -> dotted keys; a dict under a non-section field stays a value."""
    out = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        section = template.get(key) if isinstance(template, dict) else None
        if isinstance(value, dict) and (template is None or isinstance(section, dict)):
            out.update(_flatten_fields(value, section, path + "."))
        else:
            out[path] = value
    return out
