"""xtts."""
