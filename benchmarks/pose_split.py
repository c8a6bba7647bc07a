"""How well does the Animator separate head pose from expression? On the bundled driving clip (FaceWorld truth).

    .venv/bin/python benchmarks/pose_split.py [--axes 0,3,6,12]

For each ``AnimatorConfig.expr_pose_axes``: the yaw left when the "pose" toggle is off while the driver turns its
head (share of the yaw with pose on), the yaw a jaw-only expression driver adds in disentangled driving (pose from
the neutral frame), and the jaw opening that driver still produces (it must survive). RESULTS.md, 'Pose split'.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from engine.animate import Animator, AnimatorConfig
from engine.landmarks import create_detector
from engine.media import read_frames
from engine.resources import samples_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--axes", default="0,3,6,12", help="values of expr_pose_axes to compare")
    a = ap.parse_args()
    frames = read_frames(samples_dir() / "driving.mp4")
    plan = json.loads((samples_dir() / "driving.json").read_text())["script"]
    pick = {"neutral": 0, "yaw": int(np.argmax([p.get("yaw", 0.0) for p in plan])),
            "jaw": int(np.argmax([p.get("jaw_open", 0.0) for p in plan]))}
    det = create_detector("mediapipe")
    drv = {k: det.detect(frames[t]).points for k, t in pick.items()}
    det.close()
    from safetensors.torch import load_file

    anim = Animator()
    anim.set_source(load_file(str(samples_dir() / "source_ws.safetensors"))["ws"])
    src = {k: float(v[0]) for k, v in anim.generator.decode(anim.source_ws).items()}

    def params() -> dict[str, float]:
        with torch.no_grad():
            return {k: float(v[0]) for k, v in anim.generator.decode(anim.last_ws).items()}

    rows = []
    for axes in (int(x) for x in a.axes.split(",")):
        anim.config = AnimatorConfig(expr_pose_axes=axes)
        anim.calibrate(drv["neutral"])
        anim.step(drv["yaw"])
        yaw_on = abs(params()["yaw"] - src["yaw"])
        anim.config.regions["pose"] = False
        anim.step(drv["yaw"])
        yaw_off = abs(params()["yaw"] - src["yaw"])
        anim.config.regions["pose"] = True
        anim.drive_disentangled(drv["neutral"], drv["jaw"])
        p = params()
        rows.append({"expr_pose_axes": axes, "yaw_on": round(yaw_on, 3), "yaw_pose_off": round(yaw_off, 3),
                     "share_left": round(yaw_off / max(yaw_on, 1e-6), 3),
                     "disentangled_yaw_leak": round(abs(p["yaw"] - src["yaw"]), 3),
                     "disentangled_jaw": round(p["jaw_open"] - src["jaw_open"], 3)})
        print(json.dumps(rows[-1]))
    anim.close()


if __name__ == "__main__":
    main()
