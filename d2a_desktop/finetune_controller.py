"""Fine-tuning the FAN on the current source: a background task, progress in the panel, results cached per source.

Switching sources switches FANs: a source with a cached fine-tune gets it, any other source the bundle's own FAN.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from d2a_desktop import finetune_cache
from d2a_desktop.session import LiveSession
from d2a_desktop.widgets.controls_panel import ControlsPanel

TASK = "finetune"


class FinetuneController:
    """Glue between the Fine-tune controls, the task thread and the inference worker (GUI thread only)."""

    def __init__(self, session: LiveSession, controls: ControlsPanel, status: Callable[[str], None]) -> None:
        self.session = session
        self.controls = controls
        self.status = status
        self.base_bundle: Any = None  # the bundle the app started with (set when the model is ready)
        self.active_key: str | None = None  # source key of the fine-tuned FAN in use, None: the bundle's FAN
        self._current: str | None = None  # the source being animated (a result for another one is cached only)
        controls.finetune_cancel.connect(lambda: session.stop_task(TASK))

    def start(self, source_key: str | None, steps: int, **options: Any) -> None:
        """Fine-tune on the source being animated (``source_key`` names it in the cache)."""
        anim = self.session.inference._anim
        ws = anim.source_ws if anim is not None else None
        base = self.base_bundle
        if ws is None or base is None or source_key is None:
            self.status("fine-tune: no source yet")
            return
        ws = ws.detach().clone()
        target = finetune_cache.cache_dir(base, source_key)

        def run(progress: Any, cancel: Any) -> Any:
            from engine.distill.finetune import finetune

            tuned = finetune(base, ws, steps=steps, progress=progress, cancel=cancel, **options)
            if cancel.is_set():
                return None
            tuned.generator_ref = base.resolved_generator_ref()  # the cache folder is elsewhere
            tuned.save(target)
            return tuned

        def connect(worker: Any) -> None:
            worker.progress.connect(self.controls.set_finetune_busy)
            worker.result.connect(lambda bundle: self._use(bundle, source_key, source_key))
            worker.errored.connect(lambda msg: self.status(f"fine-tune failed: {msg}"))
            worker.message.connect(self.status)
            worker.finished.connect(lambda: self.controls.set_finetune_busy(None))

        self.controls.set_finetune_busy(0.0)
        self.status("fine-tuning the FAN on this source…")
        self._current = source_key
        self.session.run_task(TASK, run, connect)

    def source_changed(self, source_key: str | None) -> None:
        """A new source is animated: use its cached fine-tune, else go back to the bundle's FAN."""
        self._current = source_key
        if self.base_bundle is None or source_key is None:
            return
        try:
            cached = finetune_cache.load_cached(self.base_bundle, source_key)
        except (OSError, ValueError) as exc:
            self.status(f"ignoring a broken fine-tune cache: {exc}")
            cached = None
        if cached is not None:
            self._use(cached, source_key, source_key)
        elif self.active_key is not None:
            self.active_key = None
            self.controls.finetune_label.setText("using the bundle's FAN")
            self.session.inference.set_bundle(self.base_bundle, "the bundle's FAN")

    def _use(self, bundle: Any, key: str, for_source: str) -> None:
        if bundle is None or for_source != self._current:
            return
        self.active_key = key
        self.controls.finetune_label.setText(f"using the FAN fine-tuned on {key}")
        self.session.inference.set_bundle(bundle, f"FAN fine-tuned on {key}")
