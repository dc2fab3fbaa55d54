"""``demod-voice serve``: one resident engine behind HTTP (and the other front doors built on it).

Parent side only: nothing here imports torch, onnxruntime, piper, TTS or tinygrad; handlers
await engine handles, the workers run the models.
"""
