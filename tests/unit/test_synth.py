"""The domain-randomised training generator: seeded, shaped like the model's input, random."""

from __future__ import annotations

import numpy as np
import pytest

from rgcds.phantom.simulate import rng_stream
from rgcds.phantom.synth import (
    CHANNELS,
    CLASSES,
    GENERATOR_VERSION,
    label_map,
    randomise_appearance,
    synth_sample,
)

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def maps():  # type: ignore[no-untyped-def]
    return label_map(3)


def test_label_map_has_every_class_and_a_tumour(maps) -> None:  # type: ignore[no-untyped-def]
    assert maps.fractions.shape[0] == len(CLASSES)
    assert maps.fractions.shape[1:] == maps.labels.shape == maps.brain.shape
    total = maps.fractions.astype(np.float32).sum(axis=0)
    assert float(total.max()) <= 1.01  # fractions; the remainder is air
    assert set(np.unique(maps.labels)) <= {0, 1, 2, 3} and (maps.labels > 0).any()
    assert not (maps.labels > 0)[~maps.brain].any()  # the tumour is inside the brain
    assert 1 <= maps.foci <= 3
    assert GENERATOR_VERSION.startswith("rgcds-synth-")


def test_appearance_is_random_but_seeded(maps) -> None:  # type: ignore[no-untyped-def]
    a = randomise_appearance(maps, rng_stream(1, 63), pose=False)
    b = randomise_appearance(maps, rng_stream(1, 63), pose=False)
    c = randomise_appearance(maps, rng_stream(2, 63), pose=False)
    assert a.channels.shape == (len(CHANNELS), *maps.labels.shape)
    np.testing.assert_array_equal(a.channels, b.channels)
    assert not np.allclose(a.channels, c.channels)
    # Without a pose the truth is the label map's; z-scored inside the brain.
    np.testing.assert_array_equal(a.labels, maps.labels)
    for channel in a.channels:
        assert abs(float(channel[a.brain].mean())) < 1e-3
        assert abs(float(channel[a.brain].std()) - 1.0) < 1e-3
    # The contrast between white matter and tumour changes sign across appearances.
    wm = maps.fractions[CLASSES.index("wm")].astype(np.float32) > 0.9
    et = maps.labels == 3
    signs = set()
    for seed in range(12):
        s = randomise_appearance(maps, rng_stream(seed, 63), pose=False)
        signs.add(bool(s.channels[1][et].mean() > s.channels[1][wm].mean()))
    assert signs == {True, False}


def test_pose_moves_labels_with_the_images(maps) -> None:  # type: ignore[no-untyped-def]
    s = randomise_appearance(maps, rng_stream(4, 63), pose=True)
    assert s.labels.shape == maps.labels.shape
    kept = (s.labels > 0).sum() / (maps.labels > 0).sum()
    assert 0.8 < kept < 1.2  # a rigid motion keeps the tumour's volume (up to the edges)
    assert not np.array_equal(s.labels, maps.labels)


def test_synth_sample_raw_signal_is_non_negative() -> None:
    s = synth_sample(7, normalise=False, pose=False)
    assert float(s.channels.min()) >= 0.0
