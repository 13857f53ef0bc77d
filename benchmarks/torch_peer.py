"""The PyTorch peer of ``PosePredictor.paper()``: the same PoseResNet, written for the benchmarks.

Written from the architecture description (He et al. 2016 bottleneck ResNet-101; Xiao et al.
2018 SimpleBaseline head), layer for layer the network that ``PosePredictor.paper()`` builds, so
that both frameworks do the same arithmetic:

- stem: 7×7/2 conv (64, with bias) - BN - ReLU - 3×3/2 max-pool;
- four stages of bottleneck blocks (3, 4, 23, 3 blocks; widths 64, 128, 256, 512, expansion 4).
  As in ``keras.applications.ResNet101`` (ResNet v1), the stride of a stage sits on the block's
  first 1×1 convolution (torchvision's v1.5 puts it on the 3×3), every convolution has a bias,
  BatchNorm eps is 1.001e-5, and the first block of every stage has a 1×1 projection shortcut;
- head: 3 × (ConvTranspose 4×4/2, 256 channels, no bias - BN - ReLU), 1×1 conv to K heatmaps;
- the Caffe input normalisation of ``PosePredictor`` (RGB -> BGR minus the BGR mean), so both
  models take raw RGB in [0, 255].

``parameter_count(model)`` counts parameters and BatchNorm running statistics the way Keras
counts weights, so the benchmark can check that both models hold the same number of values.

This module is a benchmark helper, not part of the package; it needs ``torch`` (see
``benchmarks/requirements-bench.txt``).
"""

from __future__ import annotations

import torch
from torch import nn

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
RESNET101_BLOCKS = (3, 4, 23, 3)
RESNET50_BLOCKS = (3, 4, 6, 3)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _bn(channels, eps=1.001e-5):
    return nn.BatchNorm2d(channels, eps=eps, momentum=0.01)  # Keras ResNet BN: momentum 0.99


class Bottleneck(nn.Module):
    """1×1 (stride) - 3×3 - 1×1 (×4) bottleneck with an optional projection shortcut."""

    def __init__(self, in_channels, filters, stride=1, project=False):
        super().__init__()
        out = 4 * filters
        self.conv1 = nn.Conv2d(in_channels, filters, 1, stride=stride)
        self.bn1 = _bn(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1)
        self.bn2 = _bn(filters)
        self.conv3 = nn.Conv2d(filters, out, 1)
        self.bn3 = _bn(out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if project:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride), _bn(out))

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


class ResNetV1(nn.Module):
    """Bottleneck ResNet v1 as in ``keras.applications`` (stride-32 features, no top)."""

    def __init__(self, blocks=RESNET101_BLOCKS):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3), _bn(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages, channels = [], 64
        for index, (count, filters) in enumerate(zip(blocks, (64, 128, 256, 512))):
            stride = 1 if index == 0 else 2
            layers = [Bottleneck(channels, filters, stride, project=True)]
            channels = 4 * filters
            layers += [Bottleneck(channels, filters) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.out_channels = channels

    def forward(self, x):
        return self.stages(self.stem(x))


class BasicBlock(nn.Module):
    """3×3 (stride) - 3×3 basic block, no biases, BN as torch, 1×1 projection when needed."""

    def __init__(self, in_channels, filters, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, filters, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(filters, eps=1e-5, momentum=0.1)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or in_channels != filters:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, filters, 1, stride=stride,
                                                    bias=False),
                                          nn.BatchNorm2d(filters, eps=1e-5, momentum=0.1))

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class ResNet18(nn.Module):
    """Basic-block ResNet-18, the layout of the library's "resnet18" backbone (stride 32)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64, eps=1e-5, momentum=0.1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages, channels = [], 64
        for index, filters in enumerate((64, 128, 256, 512)):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(channels, filters, stride),
                                        BasicBlock(filters, filters)))
            channels = filters
        self.stages = nn.Sequential(*stages)
        self.out_channels = channels

    def forward(self, x):
        return self.stages(self.stem(x))


class PoseResNet(nn.Module):
    """ResNet + SimpleBaseline head: raw RGB (B, 3, H, W) in [0, 255] -> (B, K, H/4, W/4).

    ``blocks``: the bottleneck ResNet v1's stage depths (ResNet-101 or -50); ``basic=True``
    builds the basic-block ResNet-18 of the library's "resnet18" backbone instead (used by
    the CPU test of ``benchmarks/device_check.sh``), with its RGB / 255 then ImageNet mean/std
    input normalisation."""

    def __init__(self, num_keypoints=21, blocks=RESNET101_BLOCKS, deconv_layers=3,
                 deconv_filters=256, basic=False):
        super().__init__()
        self.basic = basic
        self.backbone = ResNet18() if basic else ResNetV1(blocks)
        head, channels = [], self.backbone.out_channels
        for _ in range(deconv_layers):
            head += [
                nn.ConvTranspose2d(channels, deconv_filters, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(deconv_filters, eps=1e-5, momentum=0.1),
                nn.ReLU(inplace=True),
            ]
            channels = deconv_filters
        self.head = nn.Sequential(*head)
        self.final = nn.Conv2d(channels, num_keypoints, 1)
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))
        self.register_buffer("rgb_mean", 255 * torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("rgb_std", 255 * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d,)) or m is self.final:
                nn.init.normal_(m.weight, std=0.001)

    def forward(self, images):
        if self.basic:
            x = (images - self.rgb_mean) / self.rgb_std  # RGB / 255, ImageNet mean / std
        else:
            x = images.flip(1) - self.mean  # RGB -> BGR, minus the Caffe mean
        return self.final(self.head(self.backbone(x))).float()


def parameter_count(model: nn.Module) -> int:
    """Parameters + BatchNorm running mean/var (what Keras counts as weights)."""
    n = sum(p.numel() for p in model.parameters())
    n += sum(b.numel() for name, b in model.named_buffers()
             if name.endswith("running_mean") or name.endswith("running_var"))
    return n


def heatmap_mse(pred, target, weights):
    """TLlib JointsMSELoss: mean over (B, K) of w_k · 0.5 · pixel MSE (NCHW heatmaps)."""
    per_kp = 0.5 * ((pred - target) ** 2).mean(dim=(2, 3))
    return (per_kp * weights).mean()


def make_train_step(model, optimizer, bf16=False, device_type="cpu"):
    """Returns ``step(images, heatmaps, weights) -> loss`` (forward, loss, backward, Adam).

    ``device_type``: where the model lives ("cpu" or "cuda"), for ``torch.autocast``."""

    def step(images, heatmaps, weights):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            pred = model(images)
        loss = heatmap_mse(pred.float(), heatmaps, weights)
        loss.backward()
        optimizer.step()
        return loss

    return step


def make_inference(model, bf16=False):
    """Returns ``infer(images) -> heatmaps`` in eval mode without autograd."""

    def infer(images):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(images)

    return infer
