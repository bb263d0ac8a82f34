"""Training patches with channel dropout: a missing T1, T2 or FLAIR is filled as the pipeline
fills it (the nearest contrast), never the T1c."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the train extra (torch) is not installed")

from rgcds.training.segmentation.data import Case
from rgcds.training.segmentation.sampling import PatchSampler, drop_channel

STAND_IN = {0: 1, 2: 3, 3: 2}  # T1 <- T1c, T2 <- FLAIR, FLAIR <- T2


def test_a_dropped_channel_is_its_stand_in_and_never_the_t1c() -> None:
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        img = np.stack([np.full((4, 4, 4), float(c)) for c in range(4)])
        missing = drop_channel(img, rng)
        seen.add(missing)
        assert missing != 1
        assert np.all(img[missing] == float(STAND_IN[missing]))
        assert all(np.all(img[c] == float(c)) for c in range(4) if c != missing)
    assert seen == {0, 2, 3}


def test_the_sampler_drops_channels_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    import rgcds.training.segmentation.sampling as sampling

    calls: list[int] = []
    monkeypatch.setattr(sampling, "drop_channel", lambda img, rng: calls.append(1) or 0)
    rng = np.random.default_rng(1)
    images = np.stack([rng.normal(v, 1.0, (40, 40, 40)).astype(np.float32) for v in range(4)])
    labels = np.zeros((40, 40, 40), dtype=np.uint8)
    labels[15:25, 15:25, 15:25] = 2
    case = Case("c", images, labels, np.ones((40, 40, 40), dtype=bool))
    for _ in range(10):
        PatchSampler([case], np.random.default_rng(0), 16).draw()
    assert not calls
    always = PatchSampler([case], np.random.default_rng(0), 16, channel_dropout=1.0)
    for _ in range(10):
        always.draw()
    assert len(calls) == 10
