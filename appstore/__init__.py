"""Composition root: settings, CLI and the wiring of the store's processes."""
