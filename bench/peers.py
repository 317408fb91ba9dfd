"""One run, one machine: lucy vs its peers on the same weights and inputs.

Checks agreement first (same top-1 on the fixture photos; then, on the real photos under
--agreement, how often int8 gives f32's top-1, for lucy and for ONNX Runtime's int8 model), then
times each after warm-up (median of --runs) with the same thread count, and writes ratios
(lucy / peer; below 1.0 means lucy is faster) into BENCHMARKS.md. lucy f32 races ONNX Runtime f32
(and PyTorch); lucy int8 races ONNX Runtime's int8 model, its own static quantization of the same
weights calibrated on 32 photos of --calibration (resnet50_onnx.py), cached in bench/out. The
peers take turns over --rounds rounds and each ratio is the median of the rounds' ratios: this
machine is shared, and its speed drifts by tens of percent from one minute to the next, so peers
timed minutes apart are not comparable.

    python3 bench/peers.py [--runs 7] [--rounds 3] [--lucy PATH] [--agreement DIR] [--write BENCHMARKS.md]
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
from photos import photos_under, preprocess  # noqa: E402
from resnet50_onnx import build, build_int8  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
REFERENCE = ["skimage_chelsea_cat", "skimage_coffee"]
PHOTOS = ROOT.parent / "shared" / "data" / "catsdogs"
CALIBRATION_PHOTOS = 32


def reference_input(name: str) -> np.ndarray:
    nhwc = np.fromfile(FIXTURES / f"{name}.input_nhwc_224x224x3_bgr_meansub.f32", dtype="<f4")
    return nhwc.reshape(224, 224, 3).transpose(2, 0, 1)[None].copy()


def lucy_top1(args, precision: str, photos: list[str]) -> dict[str, int]:
    """lucy's ImageNet top-1 for each photo it can read."""
    out = subprocess.run([args.lucy, "--weights", args.weights, "predict", "--json", "--top", "1",
                          "--precision", precision, *photos], check=True, capture_output=True, text=True)
    return {r["file"]: r["predictions"][0]["index"] for r in json.loads(out.stdout) if "predictions" in r}


def agreement(args, sessions: dict, calibration: list[Path]) -> str:
    """Top-1 agreement, int8 vs f32, on every photo under --agreement: a markdown table."""
    photos = [str(p) for p in photos_under(Path(args.agreement))]
    peer = {"f32": {}, "int8": {}}
    for i in range(0, len(photos), 8):
        chunk = [(p, x) for p in photos[i : i + 8] if (x := preprocess(Path(p))) is not None]
        if chunk:
            batch = np.stack([x for _, x in chunk])
            for precision, session in sessions.items():
                top1 = session.run(None, {"input": batch})[0].argmax(1)
                peer[precision].update(zip([p for p, _ in chunk], map(int, top1)))
    lucy = {precision: lucy_top1(args, precision, photos) for precision in ["f32", "int8"]}

    def row(label, a, b, among=None):
        common = [p for p in photos if p in a and p in b and (among is None or p in among)]
        same = sum(a[p] == b[p] for p in common)
        return f"| {label} | {same}/{len(common)} | **{100 * same / max(1, len(common)):.1f} %** |"

    calibrated = {str(p) for p in calibration}
    shown = lambda d: os.path.relpath(d, ROOT)
    return "\n".join([
        f"| top-1 agreement on the photos under `{shown(args.agreement)}` (every subfolder) | photos | agree |",
        "|---|---|---|",
        row("ONNX Runtime int8 vs ONNX Runtime f32", peer["int8"], peer["f32"]),
        row(f"ONNX Runtime int8 vs f32, without its {len(calibrated)} calibration photos",
            peer["int8"], peer["f32"], set(photos) - calibrated),
        row("lucy int8 vs lucy f32", lucy["int8"], lucy["f32"]),
        row("lucy f32 vs ONNX Runtime f32 (each decodes the photos itself)", lucy["f32"], peer["f32"]),
    ]) + (f"\n\nImageNet classes. ONNX Runtime's int8 model was calibrated on {len(calibrated)} photos of "
          f"`{shown(args.calibration)}`" + (", which are among these." if calibrated & set(photos) else "."))


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
    ap.add_argument("--runs", type=int, default=7, help="timed runs per measurement (median)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of turns; ratios are the median over rounds")
    ap.add_argument("--lucy", default=os.path.expanduser("~/.cache/lucy-target/release/lucy"))
    ap.add_argument("--weights", default=str(ROOT / "weights"))
    ap.add_argument("--agreement", metavar="DIR", default=str(PHOTOS) if PHOTOS.is_dir() else None,
                    help="real photos (every subfolder) on which int8 top-1 is compared with f32 "
                         "(default: ../shared/data/catsdogs if present)")
    ap.add_argument("--no-agreement", action="store_true", help="skip the agreement on real photos")
    ap.add_argument("--calibration", metavar="DIR", default=str(PHOTOS / "train"),
                    help=f"ONNX Runtime's int8 model is calibrated on {CALIBRATION_PHOTOS} photos of this folder, "
                         "evenly spread over its sorted list")
    ap.add_argument("--ort-activations", choices=["uint8", "int8"], default="uint8",
                    help="activation type of ONNX Runtime's int8 model (uint8: the faster on x86-64)")
    ap.add_argument("--write", help="append the results to this markdown file")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    ap.add_argument("--train", metavar="DIR", help="also time `lucy train` against PyTorch on this photo folder")
    args = ap.parse_args()
    threads = os.cpu_count() or 1

    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = threads
    session_options.inter_op_num_threads = 1
    model = build(Path(args.weights))
    session = ort.InferenceSession(model.SerializeToString(), session_options, providers=["CPUExecutionProvider"])
    photos = photos_under(Path(args.calibration))
    if len(photos) < CALIBRATION_PHOTOS:
        sys.exit(f"--calibration {args.calibration}: {len(photos)} photos, {CALIBRATION_PHOTOS} needed")
    calibration = [photos[i * len(photos) // CALIBRATION_PHOTOS] for i in range(CALIBRATION_PHOTOS)]
    int8_model = build_int8(Path(args.weights), calibration, ROOT / "bench" / "out", args.ort_activations)
    session_int8 = ort.InferenceSession(str(int8_model), session_options, providers=["CPUExecutionProvider"])
    sessions = {"f32": session, "int8": session_int8}

    # Agreement before timing: same top-1 as lucy (f32 and int8) on the reference photos.
    reference = [str(FIXTURES / f"{n}.png") for n in REFERENCE]
    ort_top1 = [int(session.run(None, {"input": reference_input(n)})[0].argmax()) for n in REFERENCE]
    for precision in ["f32", "int8"]:
        top1 = list(map(lucy_top1(args, precision, reference).get, reference))
        if top1 != ort_top1:
            sys.exit(f"disagreement: lucy {precision} top-1 {top1}, ONNX Runtime {ort_top1}")
    print(f"agreement: top-1 {ort_top1} from lucy (f32, int8) and ONNX Runtime")
    # ONNX Runtime's int8 model is a peer in speed, not the reference: reported, not required.
    int8_top1 = [int(session_int8.run(None, {"input": reference_input(n)})[0].argmax()) for n in REFERENCE]
    print(f"ONNX Runtime int8 top-1 {int8_top1}: " + ("the same" if int8_top1 == ort_top1 else "DIFFERENT from f32"))
    agreement_table = None
    if args.agreement and not args.no_agreement:
        agreement_table = agreement(args, sessions, calibration)
        print(agreement_table)
    else:
        print("agreement on real photos: skipped (no --agreement folder)")

    torch_model = None
    if not args.no_torch:
        import torch
        from resnet50_torch import Classifier

        torch.set_num_threads(threads)
        torch_peer = f"PyTorch {torch.__version__}"
        torch_model = Classifier(Path(args.weights)).eval()
        with torch.no_grad():
            top1 = [int(torch_model(torch.from_numpy(reference_input(n))).argmax()) for n in REFERENCE]
        if top1 != ort_top1:
            sys.exit(f"disagreement: PyTorch top-1 {top1}, ONNX Runtime {ort_top1}")
    else:
        torch_peer = None

    rounds = []  # one dict per round: (who, precision, batch) -> ms per image
    peak = 0.0
    def peers_ms():
        times = {}
        for batch in [1, 8]:
            x = np.repeat(reference_input(REFERENCE[0]), batch, axis=0)
            for precision, s in sessions.items():
                ms = median_ms(lambda: s.run(None, {"input": x}), args.runs)
                times[("ONNX Runtime", precision, batch)] = ms / batch
            if torch_model is not None:
                xt = torch.from_numpy(x)
                with torch.no_grad():
                    times[("PyTorch", "f32", batch)] = median_ms(lambda: torch_model(xt), args.runs) / batch
        return times

    for _ in range(args.rounds):
        peak = max(peak, peak_gflops())
        # The peers just before and just after lucy, averaged: this machine's speed drifts by
        # tens of percent over tens of seconds, and a round's ratio should compare like with like.
        # A pause before each: OpenBLAS's and ONNX Runtime's idle threads spin for a while after
        # their work (ONNX Runtime int8 measured 10-14 ms right after the peak's products, 6 ms
        # a second later).
        time.sleep(1)
        before = peers_ms()
        time.sleep(1)
        out = subprocess.run([args.lucy, "--weights", args.weights, "bench", "--json", "--runs", str(args.runs)],
                             check=True, capture_output=True, text=True)
        time.sleep(1)
        after = peers_ms()
        times = {key: (before[key] + after[key]) / 2 for key in before}
        for r in json.loads(out.stdout)["rows"]:
            times[("lucy", r["precision"], r["batch"])] = r["per_image_ms"]
        rounds.append(times)

    def median_over_rounds(fn) -> float:
        return statistics.median(fn(t) for t in rounds)

    ideal_ms = 1e3 * 2 * GMAC_PER_IMAGE / peak
    # ONNX Runtime runs the row's precision; PyTorch runs f32 only.
    peers = [p for p in ["ONNX Runtime", "PyTorch"] if (p, "f32", 1) in rounds[0]]
    peer_precision = lambda p, precision: precision if p == "ONNX Runtime" else "f32"
    columns = [f"{p} {'(same precision)' if p == 'ONNX Runtime' else 'f32'} ms/image | lucy / {p}" for p in peers]
    lines = [
        "| lucy | batch | lucy ms/image | " + " | ".join(columns) + " | lucy / ideal |",
        "|---|---|---|" + "---|---|" * len(peers) + "---|",
    ]
    for precision in ["f32", "int8"]:
        for batch in [1, 8]:
            lucy_ms = median_over_rounds(lambda t: t[("lucy", precision, batch)])
            cells = [precision, str(batch), f"{lucy_ms:.1f}"]
            for p in peers:
                peer = (p, peer_precision(p, precision), batch)
                ms = median_over_rounds(lambda t: t[peer])
                ratio = median_over_rounds(lambda t: t[("lucy", precision, batch)] / t[peer])
                cells += [f"{ms:.1f}", f"**{ratio:.2f}**"]
            # The peak is a float one: it says nothing about int8 arithmetic.
            cells.append(f"{lucy_ms / ideal_ms:.1f}" if precision == "f32" else "—")
            lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    table += (f"\n\nTimes are medians over {args.rounds} rounds (a peer's time in a round: the mean of its runs just before and just after lucy's); each ratio is the median of the rounds' ratios. "
              f"ONNX Runtime int8: its static quantization (QDQ, per-channel int8 weights, {args.ort_activations} "
              f"activations, MinMax calibration on {CALIBRATION_PHOTOS} photos; head in f32), `{int8_model.name}`. "
              f"Ideal (f32 rows): {GMAC_PER_IMAGE} G multiply-adds = {2 * GMAC_PER_IMAGE:.2f} GFLOP per image at this machine's "
              f"measured peak of {peak:.0f} GFLOP/s = {ideal_ms:.1f} ms (peak: best of 10 float32 2048x2048 matrix "
              f"products through numpy's OpenBLAS, {threads} threads, best of every round, counted as 2·n³ flops).")
    if agreement_table:
        table = agreement_table + "\n\n" + table

    if args.train:
        import tempfile
        from train_torch import train as torch_train

        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            subprocess.run([args.lucy, "--weights", args.weights, "train", args.train, "--name", "bench",
                            "--out", f"{tmp}/head.safetensors", "--cache-dir", f"{tmp}/cache", "--device", "cpu"],
                           check=True, capture_output=True, text=True)
            lucy_s = time.perf_counter() - started
            metrics = json.load(open(f"{tmp}/head.metrics.json"))
            peer = torch_train(Path(args.train), Path(args.weights), Path(tmp) / "head.pt")
        table += ("\n\n| training (photos on disk → saved head, cold) | wall s | val accuracy | test accuracy |\n|---|---|---|---|\n"
                  f"| lucy train | {lucy_s:.1f} | {metrics['val_accuracy']:.3f} | {metrics['test_accuracy']:.3f} |\n"
                  f"| PyTorch (same head and settings) | {peer['seconds']:.1f} | {peer['val_accuracy']:.3f} | {peer['test_accuracy']:.3f} |\n"
                  f"| **lucy / PyTorch** | **{lucy_s / peer['seconds']:.2f}** | | |")
    print(table)
    if args.write:
        versions = f"onnxruntime {ort.__version__}" + (f", {torch_peer}" if torch_peer else "")
        header = (f"\n## {datetime.date.today()} — native CPU, {threads} threads, {platform.machine()}, {versions}\n\n"
                  f"Command: `python3 bench/peers.py {' '.join(sys.argv[1:])}` (median of {args.runs} runs after one warm-up, "
                  f"{args.rounds} rounds)\n\n")
        with open(args.write, "a") as f:
            f.write(header + table + "\n")


# ResNet50 at 224x224: the widely quoted "4.09 GFLOPs" counts multiply-adds (its convolutions
# alone are 3.86 G); the peak below counts flops, two per multiply-add.
GMAC_PER_IMAGE = 4.09


def peak_gflops() -> float:
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    best = float("inf")
    for _ in range(10):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best / 1e9


if __name__ == "__main__":
    main()
