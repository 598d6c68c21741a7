"""ResNet-50 family in the official PfLayer layout (naver-ai/PfLayer): the same bottleneck code
for the standard, max-pool, hybrid and depthwise variants, so their checkpoints share key names.

Block: reduction_block (1x1 conv, BN, ReLU) -> conv_block (the spatial operation) ->
expansion_block (1x1 conv, BN) -> + shortcut -> ReLU.
"""
from __future__ import annotations

import torch
from torch import nn

VARIANTS = ("conv", "max", "hybrid", "depthwise")


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def spatial_op(variant: str, width: int, stride: int) -> nn.Module:
    """The block's spatial operation (`conv_block`) for one variant."""
    if variant == "conv":
        return _conv_bn_relu(width, width, 3, stride)
    if variant == "depthwise":
        return _conv_bn_relu(width, width, 3, stride, groups=width)
    if variant == "max":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if variant == "hybrid":
        if stride == 1:
            return nn.MaxPool2d(3, stride=1, padding=1)
        return nn.Sequential(nn.AvgPool2d(2, 2), _conv_bn_relu(width, width, 3, 1))
    raise ValueError(f"unknown ResNet variant {variant!r}; choose from {VARIANTS}")


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, variant: str,
                 downsample: nn.Module | None = None):
        super().__init__()
        width = planes
        self.reduction_block = nn.Sequential(
            nn.Conv2d(inplanes, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.conv_block = spatial_op(variant, width, stride)
        self.expansion_block = nn.Sequential(
            nn.Conv2d(width, planes * self.expansion, 1, bias=False),
            nn.BatchNorm2d(planes * self.expansion))
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.expansion_block(self.conv_block(self.reduction_block(x)))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet-50 v1.5 macro-architecture ([3, 4, 6, 3] bottlenecks) with a chosen spatial op."""

    def __init__(self, variant: str = "conv", layers=(3, 4, 6, 3), num_classes: int = 1000):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown ResNet variant {variant!r}; choose from {VARIANTS}")
        self.variant = variant
        self.inplanes = 64
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0], 1)
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        self._init_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out = planes * Bottleneck.expansion
        downsample = nn.Sequential(
            nn.Conv2d(self.inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
        layers = [Bottleneck(self.inplanes, planes, stride, self.variant, downsample)]
        self.inplanes = out
        layers += [Bottleneck(out, planes, 1, self.variant) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
