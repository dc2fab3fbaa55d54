"""A demod-voice backend plugin that speaks sine tones: the smallest complete backend (see docs/plugins.md)."""
