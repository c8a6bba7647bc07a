"""Settings remembered between runs (QSettings: organisation "D2A", application "D2A Desktop")."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "D2A"
APPLICATION = "D2A Desktop"


def open_settings(path: str | None = None) -> QSettings:
    """The app's settings: the platform store, or an INI file at ``path`` (tests, portable installs)."""
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(ORGANIZATION, APPLICATION)


class AppSettings:
    """Typed access to the stored controls, window geometry and last folders."""

    CONTROLS = "controls/json"
    GEOMETRY = "window/geometry"
    STATE = "window/state"
    LAST_DIR = "paths/last_dir"
    RECORD_DIR = "paths/record_dir"

    def __init__(self, qsettings: QSettings) -> None:
        self.q = qsettings

    def controls(self) -> dict[str, Any]:
        """The stored control values (empty on a first run or a corrupt entry)."""
        raw = self.q.value(self.CONTROLS, "")
        try:
            value = json.loads(str(raw)) if raw else {}
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    def set_controls(self, values: dict[str, Any]) -> None:
        """Store the control values (JSON, so types survive every QSettings backend)."""
        self.q.setValue(self.CONTROLS, json.dumps(values))

    def geometry(self) -> QByteArray | None:
        """Stored window geometry, if any."""
        value = self.q.value(self.GEOMETRY)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def set_geometry(self, geometry: QByteArray) -> None:
        self.q.setValue(self.GEOMETRY, geometry)

    def path(self, key: str, default: str = "") -> str:
        """A remembered folder (``LAST_DIR`` or ``RECORD_DIR``)."""
        return str(self.q.value(key, default) or default)

    def set_path(self, key: str, value: str) -> None:
        self.q.setValue(key, value)

    def sync(self) -> None:
        """Write to disk now."""
        self.q.sync()
