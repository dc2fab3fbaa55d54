"""The monotonic alignment piper-tts's trainer needs, without the compiled extension its wheel lacks.

piper-tts 1.8.0 imports ``piper.train.vits.monotonic_align`` inside ``SynthesizerTrn.forward``; that
package wants a Cython ``core`` module the wheel does not ship, so training fails on its first step.
``monotonic_alignment_search`` (MIT, a compiled wheel on the registry) has the same dynamic
programme, written for the transposed layout: it takes ``[batch, text, frames]`` where piper passes
``[batch, frames, text]``. :func:`maximum_path` swaps the axes on the way in and out, and
:func:`install` puts it where piper looks. Worker side: imports torch.
"""

from __future__ import annotations

import sys
import types
from typing import Any

MODULE = "piper.train.vits.monotonic_align"


def maximum_path(neg_cent: Any, mask: Any) -> Any:
    """piper's ``maximum_path``: ``neg_cent`` and ``mask`` are ``[batch, frames, text]``.

    Returns a 0/1 path of the same shape: every frame is given to exactly one phoneme, phonemes
    follow each other in order, and the path has the highest total ``neg_cent``.
    """
    from monotonic_alignment_search import maximum_path as search

    return search(neg_cent.transpose(1, 2).contiguous(), mask.transpose(1, 2).contiguous()).transpose(1, 2)


def available() -> bool:
    """Whether piper's own compiled extension imports (then nothing needs replacing)."""
    try:
        import piper.train.vits.monotonic_align  # noqa: F401
    except ImportError:
        return False
    return True


def install() -> None:
    """Make ``from . import monotonic_align`` inside piper's model find :func:`maximum_path`.

    Done before piper's model first runs; harmless when piper's own extension works (it is used).
    """
    if MODULE in sys.modules and hasattr(sys.modules[MODULE], "maximum_path"):
        return
    if available():
        return
    sys.modules.pop(MODULE, None)
    module = types.ModuleType(MODULE)
    module.__doc__ = __doc__
    module.maximum_path = maximum_path  # type: ignore[attr-defined]
    sys.modules[MODULE] = module
    import piper.train.vits as package

    package.monotonic_align = module  # type: ignore[attr-defined]
