"""The README's main job: the desktop app when a display is available, else a headless session to a video.

``make demo`` runs ``python -m d2a_desktop.launch``.
"""

from __future__ import annotations

import os
import sys


def has_display() -> bool:
    """True when a GUI can be shown (X11/Wayland on Linux; always on Windows and macOS)."""
    if sys.platform.startswith("linux"):
        if os.environ.get("QT_QPA_PLATFORM", "") in {"offscreen", "minimal"}:
            return False
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if has_display():
        from d2a_desktop.app import main as app_main

        return app_main(argv)
    out = os.environ.get("D2A_DEMO_OUT", os.path.join("out", "demo.mp4"))
    print(
        "No display found (DISPLAY/WAYLAND_DISPLAY unset): running the same session headless and "
        f"writing it to {out} instead of opening the window.",
        flush=True,
    )
    from engine.cli import main as cli_main

    return cli_main(["demo", "--out", out], standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main())
