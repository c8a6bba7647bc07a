"""D2A Desktop: the PySide6 application over the Qt-free ``engine``."""
