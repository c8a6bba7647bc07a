#!/usr/bin/env bash
# Rebuild the embedded default bundle resources/models/faceworld: CluDistiller bank + AugDistiller FAN on FaceWorld.
#
#   scripts/train_default_bundle.sh            # ~35 min on 2 CPU cores; resumable (rerun after an interruption)
#   RUN=runs/x STEPS=500 scripts/train_default_bundle.sh   # quicker variant in another run folder
#
# Steps: 1) d2a distill, preset "default" (engine.distill.recipes), on 32768 FaceWorld samples          -> RUN/bank
#        2) d2a train, preset "default"; 2 processes with DistributedDataParallel over gloo: each renders half of
#           the pair shards                                                                  -> RUN/fan/bundle
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
  "$PY" -m engine.cli distill --preset default --generator faceworld --samples "$SAMPLES" --seed "$SEED" \
      --out "$RUN/bank"
fi
"$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m engine.cli train --preset default \
    --generator faceworld --directions "$RUN/bank/directions.safetensors" --out "$RUN/fan" --steps "$STEPS" \
    --pairs "$PAIRS" --seed "$SEED"
mkdir -p resources/models/faceworld
cp "$RUN/fan/bundle/bundle.json" "$RUN/fan/bundle/directions.safetensors" "$RUN/fan/bundle/fan.safetensors" \
    resources/models/faceworld/
echo "default bundle -> resources/models/faceworld ($(du -sh resources/models/faceworld | cut -f1))"
