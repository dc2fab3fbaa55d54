"""Ctrl-C and SIGTERM held while a finished row is recorded (:func:`demod_voice.resume.signals_held`)."""

from __future__ import annotations

import signal

import pytest

from demod_voice.resume import signals_held


@pytest.mark.parametrize("raised_after", [1, 2, 3])
def test_a_signal_while_the_handlers_are_swapped_leaves_every_handler_as_it_was(monkeypatch, raised_after):
    """Python runs a signal's handler once the call it came in returns, here between two ``signal.signal`` calls: a
    SIGTERM whose handler raised after Ctrl-C's handler was swapped (or restored), but before SIGTERM's was, left
    Ctrl-C held, or SIGTERM, for the rest of the process (every later Ctrl-C quietly kept in a list)."""

    def on_term(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C's own handler, whatever this process started with (a shell's background job starts with SIGINT ignored,
    # which signals_held leaves alone: only SIGTERM was swapped, and the third case never came)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    on_int = signal.default_int_handler
    old_term = signal.signal(signal.SIGTERM, on_term)
    real = signal.signal
    calls = []

    def swapping(number, handler):
        calls.append(number)
        done = real(number, handler)
        if len(calls) == raised_after:  # the other signal's handler ran and raised just after this call returned
            raise KeyboardInterrupt
        return done

    try:
        monkeypatch.setattr(signal, "signal", swapping)
        with pytest.raises(KeyboardInterrupt):
            with signals_held():
                pass
        monkeypatch.undo()
        assert signal.getsignal(signal.SIGINT) is on_int and signal.getsignal(signal.SIGTERM) is on_term
    finally:
        real(signal.SIGTERM, old_term)
        real(signal.SIGINT, old_int)
