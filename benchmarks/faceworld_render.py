"""FaceWorld render time per image, batched: torch eager, ONNX Runtime (CPU), optionally torch.compile.

Usage (numbers go to docs/RESULTS.md, section "Render time"):
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/faceworld_render.py [--resolutions 128,256,512] [--batches 1,8]
        [--repeats 5] [--threads 2] [--onnx] [--compile]
Prints a Markdown table of ms per image as "median (min)" over the repeats (the min approximates an idle machine:
the CPU is shared with other work here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _per_image_ms(fn, batch: int, repeats: int) -> str:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3 / batch)
    return f"{statistics.median(times):.1f} ({min(times):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolutions", default="128,256,512")
    ap.add_argument("--batches", default="1,8", help="Batch sizes (comma-separated).")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onnx", action="store_true", help="Also time the exported synthesis in ONNX Runtime.")
    ap.add_argument("--compile", action="store_true", help="Also time torch.compile(synthesis) (slow to compile).")
    args = ap.parse_args()

    import torch

    from engine.generators.faceworld import FaceWorld

    torch.set_num_threads(args.threads)
    ref = torch.randn(1 << 20)

    def reference() -> None:
        for _ in range(10):
            ref.mul(1.0001)

    # the load on the shared CPU: an idle 2-core machine does one 1M-element multiply in ~0.3-0.5 ms
    load = _per_image_ms(reference, 10, args.repeats)
    print(f"FaceWorld synthesis, ms per image ({args.threads} threads): median (min)")
    print(f"machine load reference: one 1M-element float multiply = {load} ms")
    cols = ["resolution", "batch", "torch eager"] + (["onnxruntime"] if args.onnx else []) + (
        ["torch.compile"] if args.compile else [])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for res in [int(r) for r in args.resolutions.split(",")]:
        fw = FaceWorld(resolution=res).eval()
        sess = None
        if args.onnx:
            import onnxruntime as ort

            class Synthesis(torch.nn.Module):
                def __init__(self, g: FaceWorld) -> None:
                    super().__init__()
                    self.g = g

                def forward(self, w: torch.Tensor) -> torch.Tensor:
                    return self.g.synthesis(w)

            with tempfile.TemporaryDirectory() as tmp:
                path = str(Path(tmp) / "fw.onnx")
                torch.onnx.export(Synthesis(fw), (fw.w_avg.expand(2, 14, 512),), path, input_names=["ws"],
                                  output_names=["img"], dynamo=False, opset_version=17,
                                  dynamic_axes={"ws": {0: "n"}, "img": {0: "n"}})
                so = ort.SessionOptions()
                so.intra_op_num_threads = args.threads
                so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # the CPU is shared
                sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        compiled = torch.compile(fw.synthesis) if args.compile else None
        for batch in [int(b) for b in args.batches.split(",")]:
            with torch.no_grad():
                ws = fw.mapping(torch.randn(batch, 512, generator=torch.Generator().manual_seed(0)))

            def eager(fw=fw, ws=ws) -> None:
                with torch.no_grad():
                    fw.synthesis(ws)

            row = [str(res), str(batch), _per_image_ms(eager, batch, args.repeats)]
            if sess is not None:
                feed = {"ws": ws.numpy()}
                row.append(_per_image_ms(lambda sess=sess, feed=feed: sess.run(None, feed), batch, args.repeats))
            if compiled is not None:

                def comp(compiled=compiled, ws=ws) -> None:
                    with torch.no_grad():
                        compiled(ws)

                row.append(_per_image_ms(comp, batch, args.repeats))
            print("| " + " | ".join(row) + " |", flush=True)

if __name__ == "__main__":
    main()
