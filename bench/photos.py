"""Photos on disk → lucy's model input, for the peers (src/preprocess.rs with Pillow): upright RGB
(transparency over white) → shorter side 256 (Pillow's antialiased bilinear) → centre crop 224 →
BGR minus the ImageNet means (Keras "caffe" mode), [3, 224, 224] f32. Equal to the fixtures'
reference inputs (tests/fixtures/*.input_nhwc_*); JPEG decoders differ by a level or so per pixel."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def photos_under(root: Path) -> list[Path]:
    """Every photo under root and its subfolders, by path."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def preprocess(path: Path) -> np.ndarray | None:
    try:
        image = ImageOps.exif_transpose(Image.open(path))
        if image.has_transparency_data:
            image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
        image = image.convert("RGB")
    except Exception:
        return None
    w, h = image.size
    scale = 256 / min(w, h)
    image = image.resize((max(256, round(w * scale)), max(256, round(h * scale))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - 224) // 2, (h - 224) // 2
    rgb = np.asarray(image.crop((left, top, left + 224, top + 224)), dtype=np.float32)
    return (rgb[:, :, ::-1] - MEAN_BGR).transpose(2, 0, 1).copy()
