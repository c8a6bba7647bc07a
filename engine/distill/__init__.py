"""The two distillers of D²Animator.

* ``sampling``      render + detect in batches, resumable sample shards
* ``cludistiller``  CluDistiller: landmark k-means per region -> centroid/ICA directions -> pruning (``d2a distill``)
* ``rotation``      head-rotation and mouth (jaw, smile) regression directions from a rigid 3D fit of the mesh
* ``augment``       AugDistiller augmentation Δw = Σ rᵢ vᵢ with the per-layer re-norm against w̄
* ``train``         pair cache, training loop (checkpoints, resume, DDP), validation, fine-tuning (``d2a train``)
* ``finetune``      the fine-tuning API the app uses (``d2a finetune``)
* ``recipes``       the named presets of ``d2a distill`` and ``d2a train`` ("default" built the shipped bundle)

The FAN itself is ``engine.fan``; the bank format, pose axes and locality filters are ``engine.latent``; the
ground-truth measurements are ``engine.evaluation``. Modules import torch at module level; nothing here is imported
by ``engine/__init__`` or ``engine/cli``.
"""
