"""Whisper (faster-whisper): the speech recogniser, run as jobs in workers like any model."""
