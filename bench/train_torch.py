"""The PyTorch equivalent of `lucy train` (frozen backbone, same head, same settings): photos on
disk → Keras "caffe" preprocessing → frozen ResNet50 features → dropout + Linear head, Adam with
weight decay, class-weighted cross-entropy, 15 epochs, best validation epoch → saved head."""

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from photos import preprocess
from resnet50_torch import Backbone

def load_split(root: Path, classes: list[str]):
    xs, ys = [], []
    for c, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            x = preprocess(path)
            if x is not None:
                xs.append(x)
                ys.append(c)
    return xs, ys


def features(backbone, xs, batch=8):
    out = []
    with torch.no_grad():
        for i in range(0, len(xs), batch):
            out.append(backbone(torch.from_numpy(np.stack(xs[i : i + batch]))))
    return torch.cat(out)


def train(data: Path, weights: Path, out: Path, epochs=15, lr=1e-3, weight_decay=1e-4, seed=42):
    started = time.perf_counter()
    torch.manual_seed(seed)
    classes = sorted(p.name for p in (data / "train").iterdir() if p.is_dir())
    backbone = Backbone(weights).eval()
    splits = {}
    for split in ["train", "val", "test"]:
        xs, ys = load_split(data / split, classes)
        splits[split] = (features(backbone, xs), torch.tensor(ys))
    x, y = splits["train"]
    counts = torch.bincount(y, minlength=len(classes)).float()
    loss_fn = nn.CrossEntropyLoss(weight=len(y) / (len(classes) * counts))
    head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2048, len(classes)))
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    best = (-1.0, None)
    for _ in range(epochs):
        head.train()
        for idx in torch.randperm(len(y)).split(32):
            optimizer.zero_grad()
            loss_fn(head(x[idx]), y[idx]).backward()
            optimizer.step()
        head.eval()
        with torch.no_grad():
            vx, vy = splits["val"]
            accuracy = (head(vx).argmax(1) == vy).float().mean().item()
        if accuracy > best[0]:
            best = (accuracy, {k: v.clone() for k, v in head.state_dict().items()})
    head.load_state_dict(best[1])
    torch.save(head.state_dict(), out)
    with torch.no_grad():
        tx, ty = splits["test"]
        test_accuracy = (head.eval()(tx).argmax(1) == ty).float().mean().item()
    return {"seconds": time.perf_counter() - started, "val_accuracy": best[0], "test_accuracy": test_accuracy}
