"""The XTTS worker's GPT products through oneDNN (backends/xtts/packed.py): the weights a mapped checkpoint
held are handed back once they are laid out anew, so the worker's resident memory holds one copy."""

from __future__ import annotations

import numpy as np
import pytest


def _rss_file_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


def test_packing_hands_back_the_mapped_pages_of_the_weights_it_replaced(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    from demod_voice.backends.xtts import packed

    if not packed.usable():
        pytest.skip("this torch has no oneDNN")
    rows, cols = 2048, 4096  # 32 MiB of float32, mapped from a file as the backend maps model.pth
    path = tmp_path / "weights.bin"
    np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32).tofile(path)
    mapped = torch.from_file(str(path), shared=False, size=rows * cols, dtype=torch.float32).view(rows, cols)
    layer = Conv1D(cols, rows)
    with torch.no_grad():
        layer.weight = torch.nn.Parameter(mapped, requires_grad=False)  # the mapping itself, as load_state_dict(assign=True)
    model = torch.nn.Sequential(layer)
    x = torch.randn(3, rows)
    warm = torch.nn.Sequential(Conv1D(8, 16))
    packed.pack(warm)
    with torch.inference_mode():
        expected = model(x)
        warm(torch.randn(3, 16))  # oneDNN's own code pages are file pages too: in before the count
    resident = _rss_file_kb()  # the product above read every page of the mapping
    assert packed.pack(model) == 1
    handed_back = resident - _rss_file_kb()
    assert handed_back > 0.9 * rows * cols * 4 / 1024
    assert isinstance(model[0], packed.PackedConv1D)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(model[0].dense_weight(), torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(rows, cols)))
