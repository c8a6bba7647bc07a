"""Evaluation, off the product path: FaceWorld ground-truth measures, direction checks, the evaluation protocols of
``d2a eval``, the paper's ablation and ``d2a bench``. Nothing in the product imports this package."""
