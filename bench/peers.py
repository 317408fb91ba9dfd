"""One run, one machine: lucy vs its peers on the same weights and inputs.

Checks agreement first (same top-1 on the fixture photos), then times each after warm-up
(median of --runs) with the same thread count, and writes ratios (lucy / peer; below 1.0 means
lucy is faster) into BENCHMARKS.md.

    python3 bench/peers.py [--runs 7] [--lucy PATH] [--write BENCHMARKS.md]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
from resnet50_onnx import build  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
REFERENCE = ["skimage_chelsea_cat", "skimage_coffee"]


def reference_input(name: str) -> np.ndarray:
    nhwc = np.fromfile(FIXTURES / f"{name}.input_nhwc_224x224x3_bgr_meansub.f32", dtype="<f4")
    return nhwc.reshape(224, 224, 3).transpose(2, 0, 1)[None].copy()


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--lucy", default=os.path.expanduser("~/.cache/lucy-target/release/lucy"))
    ap.add_argument("--weights", default=str(ROOT / "weights"))
    ap.add_argument("--write", help="append the results to this markdown file")
    args = ap.parse_args()
    threads = os.cpu_count() or 1

    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = threads
    session_options.inter_op_num_threads = 1
    model = build(Path(args.weights))
    session = ort.InferenceSession(model.SerializeToString(), session_options, providers=["CPUExecutionProvider"])

    # Agreement before timing: same top-1 as lucy (f32 and int8) on the reference photos.
    lucy_top1 = {}
    for precision in ["f32", "int8"]:
        photos = [str(FIXTURES / f"{n}.png") for n in REFERENCE]
        out = subprocess.run([args.lucy, "--weights", args.weights, "predict", "--json", "--top", "1",
                              "--precision", precision, *photos], check=True, capture_output=True, text=True)
        lucy_top1[precision] = [r["predictions"][0]["index"] for r in json.loads(out.stdout)]
    ort_top1 = [int(session.run(None, {"input": reference_input(n)})[0].argmax()) for n in REFERENCE]
    for precision, top1 in lucy_top1.items():
        if top1 != ort_top1:
            sys.exit(f"disagreement: lucy {precision} top-1 {top1}, ONNX Runtime {ort_top1}")
    print(f"agreement: top-1 {ort_top1} from lucy (f32, int8) and ONNX Runtime")

    rows = []
    for batch in [1, 8]:
        x = np.repeat(reference_input(REFERENCE[0]), batch, axis=0)
        ms = median_ms(lambda: session.run(None, {"input": x}), args.runs)
        rows.append({"peer": "onnxruntime", "precision": "f32", "batch": batch, "per_image_ms": ms / batch})

    out = subprocess.run([args.lucy, "--weights", args.weights, "bench", "--json", "--runs", str(args.runs)],
                         check=True, capture_output=True, text=True)
    lucy_rows = json.loads(out.stdout)["rows"]

    lines = [f"| lucy precision | batch | lucy ms/image | ONNX Runtime f32 ms/image | ratio lucy / ORT |", "|---|---|---|---|---|"]
    for r in lucy_rows:
        peer = next(p for p in rows if p["batch"] == r["batch"])
        ratio = r["per_image_ms"] / peer["per_image_ms"]
        lines.append(f"| {r['precision']} | {r['batch']} | {r['per_image_ms']:.1f} | {peer['per_image_ms']:.1f} | {ratio:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        header = (f"\n## {datetime.date.today()} — native CPU, {threads} threads, {platform.machine()}, "
                  f"onnxruntime {ort.__version__}\n\nCommand: `python3 bench/peers.py --runs {args.runs} --write {args.write}`"
                  f" (median of {args.runs} runs after one warm-up)\n\n")
        with open(args.write, "a") as f:
            f.write(header + table + "\n")


if __name__ == "__main__":
    main()
