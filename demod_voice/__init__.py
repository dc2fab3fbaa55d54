"""demod-voice: voice cloning and text-to-speech from one command line.

Importing this package is cheap on purpose: engines (torch, onnxruntime, coqui-tts,
piper, tinygrad) load only inside the worker that needs them.
"""

__version__ = "0.1.0"
