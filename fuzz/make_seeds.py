#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/: small valid inputs for each fuzz target to start from.

Run from anywhere after `lucy import` (the manifest seed is the real one); needs Pillow.
The photos of tests/fixtures/extreme are seeds too (scripts/fuzz passes that folder).
"""
import io
import json
import shutil
import struct
from pathlib import Path

from PIL import Image

FUZZ = Path(__file__).parent
ROOT = FUZZ.parent
SEEDS = FUZZ / "seeds"


def write(target, name, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def photo(fmt, mode="RGB", size=(12, 9), **kw):
    img = Image.new(mode, size)
    for x in range(size[0]):
        for y in range(size[1]):
            img.putpixel((x, y), (x * 20 % 256, y * 28 % 256, 128)[: len(mode)] if mode != "L" else x * 20)
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def safetensors(tensors, metadata):
    """tensors: name -> (dtype, shape, bytes)"""
    header, offset, data = {"__metadata__": metadata}, 0, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)
    # Photos: one of each format and colour type lucy accepts, plus the damaged fixtures.
    write("preprocess_bytes", "rgb.jpg", photo("JPEG"))
    write("preprocess_bytes", "progressive.jpg", photo("JPEG", progressive=True))
    write("preprocess_bytes", "grey.jpg", photo("JPEG", "L"))
    write("preprocess_bytes", "rgb.png", photo("PNG"))
    write("preprocess_bytes", "rgba.png", photo("PNG", "RGBA"))
    write("preprocess_bytes", "interlaced.png", photo("PNG", interlace=1))
    write("preprocess_bytes", "lossy.webp", photo("WEBP"))
    write("preprocess_bytes", "lossless.webp", photo("WEBP", lossless=True))
    write("preprocess_bytes", "rgb.bmp", photo("BMP"))
    write("preprocess_bytes", "rgb.tif", photo("TIFF"))
    write("preprocess_bytes", "deflate.tif", photo("TIFF", compression="tiff_deflate"))
    write("preprocess_bytes", "still.gif", photo("GIF", "P"))
    for name in ["upright.jpg", "truncated.jpg", "unsupported.ico", "huge-50000x50000.png", "not-a-photo.jpg"]:
        write("preprocess_bytes", name, (ROOT / "tests/fixtures" / name).read_bytes())

    # RGBA pixels: width, height (u16 each), a flags byte (top bit: exact length), pixels.
    write("preprocess_rgba", "4x3-exact", struct.pack("<HHB", 4, 3, 0x80) + bytes(range(48)))
    write("preprocess_rgba", "300x1-exact", struct.pack("<HHB", 300, 1, 0x80) + bytes(range(0, 256, 3)))
    write("preprocess_rgba", "2x2-short", struct.pack("<HHB", 2, 2, 0) + bytes(10))

    # The real manifest, and one in the older form (labels copied into it).
    manifest = json.loads((ROOT / "weights/manifest.json").read_text())
    write("manifest", "manifest.json", json.dumps(manifest, indent=2).encode())
    old = dict(manifest, heads=[dict(h, labels=["a", "b"]) for h in manifest["heads"]])
    write("manifest", "old-form.json", json.dumps(old).encode())

    # A two-class head (2048 x 2 weights and a bias), as `lucy train` writes it.
    meta = {"lucy_head": json.dumps({"name": "lucy", "labels": ["Lucy", "Other"]})}
    weight = struct.pack("<4096f", *[(i % 13 - 6) / 100 for i in range(4096)])
    bias = struct.pack("<2f", 0.25, -0.25)
    write("head_file", "two-classes.safetensors", safetensors(
        {"bias": ("F32", [2], bias), "weight": ("F32", [2048, 2], weight)}, meta))
    write("head_file", "wrong-shape.safetensors", safetensors(
        {"bias": ("F32", [2], bias), "weight": ("F32", [2, 2], weight[:16])}, meta))

    # A project file as the page downloads it: four photos' features, two classes.
    lesson = {"head_name": "taught", "classes": ["Lucy", "Other"], "labels": [0, 0, 1, 1],
              "config": {"epochs": 2, "batch_size": 2, "learning_rate": 0.001, "weight_decay": 0.0001,
                         "dropout": 0.2, "class_weights": True, "patience": 1, "seed": 42},
              "val_fraction": 0.5}
    project = {"format": 1, "lesson": lesson, "photos": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
               "backbone_sha256": "00" * 32}
    features = struct.pack(f"<{4 * 2048}f", *[((i % 7) - 3) / 10 for i in range(4 * 2048)])
    write("project_file", "four-photos.safetensors", safetensors(
        {"features": ("F32", [4, 2048], features)}, {"lucy_project": json.dumps(project)}))

    # TF.js: a length-prefixed model.json, then the shard bytes.
    model = {"weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": [
        {"name": "conv1_conv/kernel", "shape": [1, 1, 3, 2], "dtype": "float32"},
        {"name": "conv1_conv/bias", "shape": [2], "dtype": "float32"}]}]}
    text = json.dumps(model).encode()
    write("tfjs_model", "small", struct.pack("<H", len(text)) + text + struct.pack("<8f", *range(8)))


if __name__ == "__main__":
    main()
