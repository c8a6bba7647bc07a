"""What a refused checkpoint looks like: the error type, the list of supported formats and the reason a safe torch
loader gives. Shared by ``checkpoints`` and ``_nvpickle`` (which ``checkpoints`` calls), so neither imports the other
for it."""

from __future__ import annotations

SUPPORTED = (
    "NVlabs StyleGAN2 network pickles (.pkl from stylegan2-ada-pytorch or the stylegan3 repo's StyleGAN2), "
    "rosinality stylegan2-pytorch checkpoints (.pt), and D2A StyleGAN2 .safetensors (made by `d2a convert`)"
)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded: missing, corrupt, unsafe or of an unsupported kind.

    The message names the file and what was found; the list of supported formats is appended when absent.
    """

    def __init__(self, message: str) -> None:
        if "Supported:" not in message:
            message = f"{message.rstrip('.')}. Supported: {SUPPORTED}."
        super().__init__(message)


def weights_only_reason(text: str) -> str:
    """The informative line of a ``torch.load(weights_only=True)`` refusal (not its 'retry unsafely' advice)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    detail = [ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln or "unsupported" in ln]
    if detail:
        return detail[0].rstrip(".")
    return "it contains objects other than tensors and plain containers"
