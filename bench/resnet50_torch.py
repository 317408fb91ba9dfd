"""The same ResNet50 v1 in PyTorch, from lucy's own f32 bundle (batch-norm folded), so the
PyTorch peer runs exactly lucy's weights."""

from pathlib import Path

import torch
from torch import nn

from resnet50_onnx import STAGES, read_safetensors


class Bottleneck(nn.Module):
    def __init__(self, w, block_id, stride, project):
        super().__init__()
        conv = lambda name, s, p: _conv(w, f"res{block_id}_branch{name}", s, p)
        self.reduce, self.spatial, self.expand = conv("2a", stride, 0), conv("2b", 1, 1), conv("2c", 1, 0)
        self.projection = conv("1", stride, 0) if project else None

    def forward(self, x):
        shortcut = self.projection(x) if self.projection is not None else x
        y = torch.relu(self.reduce(x))
        y = torch.relu(self.spatial(y))
        return torch.relu(self.expand(y) + shortcut)


def _conv(w, name, stride, padding):
    weight = torch.from_numpy(w[f"{name}.weight"].copy())
    out_c, in_c, k, _ = weight.shape
    conv = nn.Conv2d(in_c, out_c, k, stride=stride, padding=padding, bias=True)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(torch.from_numpy(w[f"{name}.bias"].copy()))
    return conv


class Backbone(nn.Module):
    def __init__(self, weights_dir: Path):
        super().__init__()
        w = read_safetensors(weights_dir / "resnet50-f32.safetensors")
        self.stem = _conv(w, "conv1", 2, 3)
        blocks = []
        for stage, count, _, _, first_stride in STAGES:
            for b in range(count):
                blocks.append(Bottleneck(w, f"{stage}{chr(ord('a') + b)}", first_stride if b == 0 else 1, b == 0))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = nn.functional.max_pool2d(x, 3, 2, padding=1)
        return self.blocks(x).mean(dim=(2, 3))


class Classifier(nn.Module):
    def __init__(self, weights_dir: Path):
        super().__init__()
        self.backbone = Backbone(weights_dir)
        head = read_safetensors(weights_dir / "head-imagenet.safetensors")
        self.fc = nn.Linear(2048, head["bias"].shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(head["weight"].T.copy()))
            self.fc.bias.copy_(torch.from_numpy(head["bias"].copy()))

    def forward(self, x):
        return torch.softmax(self.fc(self.backbone(x)), dim=1)
