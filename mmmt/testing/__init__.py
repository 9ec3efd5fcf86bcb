"""Helpers for tests and demos: synthetic datasets in the real layouts (imported by path,
e.g. ``mmmt.testing.synthetic_cityscapes``; nothing is imported here)."""
