"""ViT-max and PiT-max in the official PfLayer layout.

A block is `x = x + attn(norm1(x)); x = x + mlp(norm2(x))`. Blocks with an even index inside
their stage use multi-head self-attention; odd ones use the parameter-free max-pool mixer, which
is stored under the same `attn` name (qkv -> GELU -> 3x3 max-pool on the token grid -> GELU ->
proj). Neither model has a class token: the head reads the mean of the normalised tokens.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # scale = head_dim ** -0.5, SDPA's default; same maths as softmax(q k^T * scale) v.
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class MaxPoolMixer(nn.Module):
    """The parameter-free token mixer: a 3x3 max-pool over the (s x s) token grid."""

    def __init__(self, dim: int):
        super().__init__()
        self.qkv = nn.Linear(dim, dim * 3)
        self.act = nn.GELU()
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.proj = nn.Linear(dim * 3, dim)

    def forward(self, x):
        b, n, _ = x.shape
        # n is static in any export (only the batch axis is dynamic), so s stays a constant.
        s = math.isqrt(n)
        x = self.act(self.qkv(x))
        c = x.shape[-1]
        x = x.transpose(1, 2).reshape(b, c, s, s)
        x = self.pool(x).flatten(2).transpose(1, 2)
        return self.proj(self.act(x))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mixer: str, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads) if mixer == "attention" else MaxPoolMixer(dim)
        # mlp is registered before norm2, as in the release, so state_dict order matches too
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _blocks(depth: int, dim: int, heads: int) -> nn.Sequential:
    return nn.Sequential(*[
        Block(dim, heads, "attention" if i % 2 == 0 else "max") for i in range(depth)])


def _init_transformer(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    nn.init.trunc_normal_(model.pos_embed, std=0.02)


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class ViTMax(nn.Module):
    """ViT with every second attention layer replaced by the max-pool mixer (release: EffTransformer)."""

    def __init__(self, dim: int, heads: int, depth: int = 12, img_size: int = 224, patch: int = 16,
                 num_classes: int = 1000):
        super().__init__()
        tokens = (img_size // patch) ** 2
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.patch_embed = PatchEmbed(dim, patch)
        self.blocks = _blocks(depth, dim, heads)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        _init_transformer(self)

    def forward(self, x):
        x = self.patch_embed(x) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=1))


class ConvEmbed(nn.Module):
    def __init__(self, dim: int, patch: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(3, dim, patch, stride=stride)

    def forward(self, x):
        return self.conv(x)


class Stage(nn.Module):
    def __init__(self, depth: int, dim: int, heads: int):
        super().__init__()
        self.blocks = _blocks(depth, dim, heads)

    def forward(self, x):  # x: (B, C, H, W) -> same shape
        b, c, h, w = x.shape
        t = self.blocks(x.flatten(2).transpose(1, 2))
        return t.transpose(1, 2).reshape(b, c, h, w)


class Pool(nn.Module):
    """PiT's pooling layer between stages: a strided depthwise conv (kept in PiT-max)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1, groups=cin)

    def forward(self, x):
        return self.conv(x)


class PiTMax(nn.Module):
    """PiT with every second attention layer replaced by the max-pool mixer (release: PoolingTransformer)."""

    def __init__(self, patch: int, stride: int, base_dim: int, heads, depth, img_size: int = 224,
                 num_classes: int = 1000):
        super().__init__()
        dims = [base_dim * h for h in heads]
        side = math.floor((img_size - patch) / stride + 1)
        self.pos_embed = nn.Parameter(torch.zeros(1, dims[0], side, side))
        self.patch_embed = ConvEmbed(dims[0], patch, stride)
        self.transformers = nn.ModuleList(
            [Stage(d, dim, h) for d, dim, h in zip(depth, dims, heads)])
        self.pools = nn.ModuleList([Pool(dims[i], dims[i + 1]) for i in range(len(dims) - 1)])
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
        _init_transformer(self)

    def forward(self, x):
        x = self.patch_embed(x)
        pos = self.pos_embed
        if pos.shape[-2:] != x.shape[-2:]:
            pos = F.interpolate(pos, size=x.shape[-2:], mode="bicubic", align_corners=False)
        x = x + pos
        for i, stage in enumerate(self.transformers):
            x = stage(x)
            if i < len(self.pools):
                x = self.pools[i](x)
        t = self.norm(x.flatten(2).transpose(1, 2))
        return self.head(t.mean(dim=1))
