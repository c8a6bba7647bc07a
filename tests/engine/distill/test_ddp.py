"""Multi-process AugDistiller training: 2 processes with DistributedDataParallel over gloo (torch.distributed.run)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]


def test_ddp_two_processes(tmp_path) -> None:
    from safetensors.torch import save_file

    from engine.bundle import load_bundle
    from engine.evaluation.directions import pca_directions
    from engine.generators import load_generator

    fw = load_generator("faceworld", resolution=96)
    like = torch.zeros(1, fw.num_ws, fw.w_dim)
    like[0, 0, 0] = 8.0
    save_file({"directions": pca_directions(fw, 4, like, samples=500).contiguous()},
              str(tmp_path / "directions.safetensors"))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "engine.cli", "train", "--preset", "plain", "--directions", str(tmp_path / "directions.safetensors"),
           "--out", str(run),
           "--steps", "6", "--batch", "8", "--pairs", "32", "--val-pairs", "8", "--val-render", "0",
           "--heatmap-size", "32", "--width", "16", "--resolution", "96", "--checkpoint-every", "3",
           "--shard-sources", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    b = load_bundle(run / "bundle")
    assert b.meta["world_size"] == 2 and b.meta["trained_steps"] == 6
    # Both ranks made pair shards (round-robin) and rank 0 logged every step.
    assert len(list((run / "pairs").glob("shard_*.safetensors"))) >= 2
    assert [int(r["step"]) for r in csv.DictReader((run / "metrics.csv").open())][-1] == 6
    assert json.loads((run / "metrics.json").read_text())["validation"]
