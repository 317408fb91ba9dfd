"""Trunk post-build hook: finish the static site in $TRUNK_STAGING_DIR.

1. Copy the weights the page needs (manifest.json, the int8 backbone, every head) into
   weights/ — not the 94 MB f32 backbone, which only the CLI uses.
2. Put the sha256 of each inline <script> (Trunk's wasm loader) into the Content-Security-
   Policy in place of TRUNK_LOADER_HASH, so the policy can forbid every other inline script.
"""

import base64
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

root = Path(__file__).resolve().parent.parent
staging = Path(os.environ["TRUNK_STAGING_DIR"])

source = root / "weights"
manifest = json.loads((source / "manifest.json").read_text())
target = staging / "weights"
target.mkdir(exist_ok=True)
needed = ["manifest.json", manifest["backbones"]["int8"], *[h["file"] for h in manifest["heads"]]]
for name in needed:
    shutil.copyfile(source / name, target / name)

index = staging / "index.html"
html = index.read_text()
inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, flags=re.S)
hashes = " ".join(
    "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'" for body in inline
)
if "TRUNK_LOADER_HASH" not in html:
    raise SystemExit("index.html has no TRUNK_LOADER_HASH placeholder in its Content-Security-Policy")
index.write_text(html.replace("TRUNK_LOADER_HASH", hashes))
print(f"finish_site: copied {len(needed)} weight files, allowed {len(inline)} inline script(s) by hash")
