"""Trunk post-build hook: finish the static site in $TRUNK_STAGING_DIR.

1. Copy the weights the page needs (the int8 backbone, every head) into weights/ with a
   manifest listing just those — not the 94 MB f32 backbone, which only the CLI uses.
2. Put the sha256 of each inline <script> (Trunk's wasm loader) into the Content-Security-
   Policy in place of TRUNK_LOADER_HASH, so the policy can forbid every other inline script.
3. Write the app shell's file list (everything but the weights and the model wasms) into sw.js,
   which keeps those files on install, and the model wasms' names, which it keeps once fetched:
   one visit is enough to work offline.
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


def intact(name: str) -> bool:
    path = source / name
    entry = manifest["files"].get(name)
    return path.is_file() and entry is not None and hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]


# The site's manifest lists exactly what the site serves: the int8 backbone and every head
# whose file is present and intact (a head deleted by hand is left out, with a warning).
int8 = manifest["backbones"]["int8"]
if not intact(int8):
    raise SystemExit(f"weights/{int8} is missing or damaged: run `lucy import --force`")
heads = []
for head in manifest["heads"]:
    if intact(head["file"]):
        heads.append(head)
    else:
        print(f"finish_site: leaving out head `{head['name']}`: weights/{head['file']} is missing or damaged")
files = [int8, *[h["file"] for h in heads]]
for name in files:
    shutil.copyfile(source / name, target / name)
site_manifest = dict(manifest, backbones={"int8": int8}, heads=heads,
                     files={name: manifest["files"][name] for name in files})
# The site's default head (`lucy add-head --default`) only while it is served.
if site_manifest.get("default_head") not in [h["name"] for h in heads]:
    if "default_head" in site_manifest:
        print(f"finish_site: the default head `{site_manifest['default_head']}` is left out: ImageNet's instead")
    site_manifest.pop("default_head", None)
(target / "manifest.json").write_text(json.dumps(site_manifest, indent=2) + "\n")

index = staging / "index.html"
html = index.read_text()
inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, flags=re.S)
hashes = " ".join(
    "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'" for body in inline
)
if "TRUNK_LOADER_HASH" not in html:
    raise SystemExit("index.html has no TRUNK_LOADER_HASH placeholder in its Content-Security-Policy")
index.write_text(html.replace("TRUNK_LOADER_HASH", hashes))
print(f"finish_site: copied {len(files)} weight files, allowed {len(inline)} inline script(s) by hash")

sw = staging / "sw.js"
shell_paths = sorted(
    p for p in staging.rglob("*")
    if p.is_file() and p.relative_to(staging).parts[0] != "weights" and p.name != "sw.js"
)
# The model wasms (WebGPU + one thread; the threaded CPU ones, SIMD128 and relaxed SIMD) are
# kept when first fetched, not on install: a visitor downloads only the one their browser runs.
models = [p for p in shell_paths if re.fullmatch(r"lucy-model.*_bg\.wasm", p.name)]
if len(models) != 3:
    raise SystemExit(f"expected the three model wasms in the site, found {[p.name for p in models]}")
shell = ["./"] + [p.relative_to(staging).as_posix() for p in shell_paths if p not in models]
version = hashlib.sha256()
for p in shell_paths:
    version.update(p.relative_to(staging).as_posix().encode() + b"\0" + p.read_bytes())
text = sw.read_text()
for placeholder in ["/* SHELL_FILES */", "/* MODEL_FILES */", "/* VERSION */"]:
    if placeholder not in text:
        raise SystemExit(f"static/sw.js lacks its {placeholder} placeholder")
text = text.replace("/* SHELL_FILES */", ", ".join(json.dumps(f) for f in shell))
text = text.replace("/* MODEL_FILES */", ", ".join(json.dumps(p.name) for p in models))
sw.write_text(text.replace("/* VERSION */", version.hexdigest()[:16]))
print(f"finish_site: the service worker keeps {len(shell)} shell files, and the model wasm a visitor uses")
