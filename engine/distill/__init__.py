"""The two distillers of D²Animator.

* ``sampling``      render + detect in batches, resumable sample shards
* ``cludistiller``  CluDistiller: landmark k-means per region -> centroid/ICA directions -> pruning (``d2a distill``)
* ``augment``       AugDistiller augmentation Δw = Σ rᵢ vᵢ with the per-layer re-norm against w̄
* ``fan``           the facial action network, its shared preprocessing ``fan_inputs`` and the loss
* ``train``         pair cache, training loop (checkpoints, resume, DDP), validation, fine-tuning (``d2a train``)
* ``finetune``      the fine-tuning API the app uses (``d2a finetune``)
* ``direction_check``, ``ablation``, ``design_study``  FaceWorld ground-truth measurements (docs/RESULTS.md)

Modules import torch at module level; nothing here is imported by ``engine/__init__`` or ``engine/cli``.
"""
