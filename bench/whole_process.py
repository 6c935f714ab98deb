"""Whole-process wall time of this project's CLI against an original-style ``inference_img.py`` loop.

Each round runs the reference command and ``python -m rife`` one after the other as fresh processes on the same
input folder (Python and torch start-up, model loading, PNG decode/encode included); the table shows every
round, the best and the median ratio. The machine's load changes from round to round, so only the ratios of
one run mean anything.

The reference is a command line with ``{src}``, ``{out}``, ``{weights}`` and ``{multi}`` placeholders. Without
``--reference`` the built-in one is used: ``bench/bench_engine.py``'s naive official loop run per pair the way
``inference_img.py`` does (read both PNGs with OpenCV, pad to 64, encode and run the official forward structure
for every in-between, write every frame with OpenCV), in fp32 with torch's default threads. The project's
CLI runs with its defaults (precision auto).

    python bench/whole_process.py --src FOLDER [--rounds 3] [--multi 4] [--reference "python ref.py {src} {out}"]
        [--before OTHER_CHECKOUT]

``--before`` also runs another checkout's CLI every round (after ours), to measure a change against the same
reference runs.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared" / "weights" / "rife-v4.25.safetensors"


def naive_folder(src: Path, out: Path, weights: Path, multi: int) -> None:
    """The built-in reference: inference_img.py's per-pair loop with the naive official forward."""
    import cv2
    import torch

    sys.path.insert(0, str(REPO))
    from bench.bench_engine import naive_infer
    from rife import load_model

    torch.set_grad_enabled(False)
    model = load_model(weights, device="cpu", dtype="fp32")
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(src.glob("*.png"))
    written = 0
    for first, second in itertools.pairwise(paths):
        img0, img1 = (torch.from_numpy(cv2.imread(str(p), cv2.IMREAD_UNCHANGED)) for p in (first, second))
        img0, img1 = (img.permute(2, 0, 1)[None].float() / 255.0 for img in (img0, img1))
        frames = [img0] if first == paths[0] else []
        frames += [naive_infer(model, img0, img1, k / multi) for k in range(1, multi)] + [img1]
        for frame in frames:
            image = (frame[0] * 255).byte().numpy().transpose(1, 2, 0)
            cv2.imwrite(str(out / f"{written:07d}.png"), image)
            written += 1


def timed(command: list[str], cwd: Path = REPO) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, help="folder of numbered PNG frames")
    parser.add_argument("--multi", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="weights for our CLI and the built-in loop")
    parser.add_argument("--reference", help="reference command with {src} {out} {weights} {multi} placeholders")
    parser.add_argument("--reference-weights", type=Path, help="{weights} of --reference (default: --weights)")
    parser.add_argument("--ours", default="", help="extra flags for our CLI, e.g. '--precision fp32'")
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout (e.g. a git worktree of an older commit) whose CLI also runs every round",
    )
    parser.add_argument("--naive", nargs=3, metavar=("SRC", "OUT", "MULTI"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive:
        naive_folder(Path(args.naive[0]), Path(args.naive[1]), args.weights, int(args.naive[2]))
        return
    if args.src is None:
        parser.error("--src is required")
    work = Path(tempfile.mkdtemp(prefix="rife-whole-"))
    try:
        fields = {"src": args.src, "out": work / "ref", "multi": args.multi}
        fields["weights"] = args.reference_weights or args.weights
        if args.reference:
            reference = [part.format(**fields) for part in shlex.split(args.reference)]
        else:
            reference = [sys.executable, __file__, "--weights", str(args.weights), "--naive"]
            reference += [str(args.src), str(work / "ref"), str(args.multi)]
        ours = [sys.executable, "-m", "rife", "--model", str(args.weights), "--img", str(args.src)]
        ours += ["--output", str(work / "ours"), "--multi", str(args.multi), "--overwrite", *shlex.split(args.ours)]
        print(f"reference: {shlex.join(map(str, reference))}\nours:      {shlex.join(ours)}")
        ratios: dict[str, list[float]] = {"ours": [], "before": []}
        for index in range(args.rounds):
            shutil.rmtree(work / "ref", ignore_errors=True)
            ref_s, ours_s = timed(reference), timed(ours)
            ratios["ours"].append(ours_s / ref_s)
            line = f"round {index + 1}: reference {ref_s:7.1f} s, ours {ours_s:7.1f} s ({ours_s / ref_s:.3f})"
            if args.before:
                before_s = timed(ours, cwd=args.before)
                ratios["before"].append(before_s / ref_s)
                line += f", before {before_s:7.1f} s ({before_s / ref_s:.3f})"
            print(line)
        for name, values in ratios.items():
            if values:
                best, median = min(values), statistics.median(values)
                print(f"{name}/reference: best {best:.3f}, median {median:.3f} ({args.rounds} rounds)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
