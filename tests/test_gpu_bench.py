"""bench/gpu_bench.py runs end to end on CPU (its --quick mode), so the GPU benchmark is ready when a GPU is."""

from __future__ import annotations

import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_bench_quick_mode_runs_on_cpu(real_weights: Path, capsys) -> None:
    sys.path.insert(0, str(REPO))
    from bench import gpu_bench

    rows = gpu_bench.main(["--device", "cpu", "--quick", "--weights", str(real_weights)])
    table = capsys.readouterr().out
    assert [row["precision"] for row in rows] == ["fp32", "fp16", "bf16"]
    assert table.count("| 96x64 | 2 |") == 3
    for row in rows:
        assert row["naive_fps"] > 0 and row["ours_fps"] > 0
        assert math.isnan(row["ours_mib"])  # peak memory is reported on CUDA only
    fp32, fp16, bf16 = rows
    assert math.isinf(fp32["psnr"]) and fp32["max_diff"] <= 1e-4  # ours equals the official loop in fp32
    assert fp16["psnr"] >= 60 and bf16["psnr"] >= 50
