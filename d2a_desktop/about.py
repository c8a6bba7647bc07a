"""The About box: version, model, backend and library information."""

from __future__ import annotations

import platform
from typing import Any

from PySide6 import __version__ as pyside_version
from PySide6.QtWidgets import QMessageBox, QWidget


def about_text(info: dict[str, Any]) -> str:
    """HTML for the About box from the inference worker's ``ready`` info (may be empty while loading)."""
    from engine import __version__

    n_dirs = len(info.get("directions", []))
    rows = [
        ("Version", __version__),
        ("Model bundle", info.get("bundle", "loading…")),
        ("Generator", info.get("generator", "loading…")),
        ("Direction bank", f"{n_dirs} directions" if info else "loading…"),
        ("FAN", info.get("fan", "—")),
        ("Backend", f"{info.get('backend', '—')} on {info.get('device', '—')} ({info.get('threads', '?')} threads)"),
        ("Landmarks", info.get("detector", "—")),
        ("Libraries", f"torch {info.get('torch', '?')}, PySide6 {pyside_version}, Python {platform.python_version()}"),
    ]
    body = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;{v}</td></tr>" for k, v in rows)
    return (
        "<h3>D2A Desktop</h3>"
        "<p>Live high-resolution face animation with a StyleGAN2-interface generator, after "
        "<i>D²Animator: Dual Distillation of StyleGAN for High-Resolution Face Animation</i> (ACM MM 2022).</p>"
        f"<table>{body}</table>"
    )


def show_about(parent: QWidget, info: dict[str, Any]) -> None:
    """Show the modal About box."""
    QMessageBox.about(parent, "About D2A Desktop", about_text(info))
