"""Widgets of the main window (views and panels; no model code)."""
