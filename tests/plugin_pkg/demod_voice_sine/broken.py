"""A plugin module that cannot be imported (its dependency is missing)."""

import demod_voice_sine_missing_dependency  # noqa: F401
