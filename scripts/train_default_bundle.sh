#!/usr/bin/env bash
# Rebuild the embedded default bundle resources/models/faceworld: CluDistiller bank + AugDistiller FAN on FaceWorld.
#
#   scripts/train_default_bundle.sh            # ~35 min on 2 CPU cores; resumable (rerun after an interruption)
#   RUN=runs/x STEPS=500 scripts/train_default_bundle.sh   # quicker variant in another run folder
#
# Steps: 1) d2a distill --localise (32768 FaceWorld samples at 128 px, mediapipe, k-means over 6 regions, localised
#           expression directions, head-rotation and mouth regression directions from 4096 3D meshes)   -> RUN/bank
#        2) d2a train   (8192 augmented pairs at 128 px, eye directions at half range, FAN on 32x32 heatmaps,
#           3000 steps; 2 processes with DistributedDataParallel over gloo: each renders half of the pair
#           shards)                                                                        -> RUN/fan/bundle
#        3) copy RUN/fan/bundle to resources/models/faceworld (the bundle renders at FaceWorld's default 256 px)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUN=${RUN:-runs/default_bundle}
STEPS=${STEPS:-3000}
PAIRS=${PAIRS:-8192}
SAMPLES=${SAMPLES:-32768}
SEED=${SEED:-0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

NPROC=${NPROC:-2}
if [ ! -f "$RUN/bank/directions.safetensors" ]; then
  "$PY" -m engine.cli distill --generator faceworld --samples "$SAMPLES" --seed "$SEED" --resolution 128 \
      --k 2,3,4,6,8,12 --effect-samples 8 --localise --out "$RUN/bank"
fi
"$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m engine.cli train --generator faceworld --directions "$RUN/bank/directions.safetensors" \
    --out "$RUN/fan" --steps "$STEPS" --batch 32 --pairs "$PAIRS" --targets-per-source 8 --val-pairs 256 \
    --val-render 32 --heatmap-size 32 --sigma 2 --width 32 --output coeffs --resolution 128 --checkpoint-every 100 \
    --eye-range 0.5 --seed "$SEED"
mkdir -p resources/models/faceworld
cp "$RUN/fan/bundle/bundle.json" "$RUN/fan/bundle/directions.safetensors" "$RUN/fan/bundle/fan.safetensors" \
    resources/models/faceworld/
echo "default bundle -> resources/models/faceworld ($(du -sh resources/models/faceworld | cut -f1))"
