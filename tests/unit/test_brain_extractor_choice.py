"""``[preprocessing] brain_extractor``: the setting, its bounds, and what the factory builds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rgcds.config import Settings
from rgcds.imaging.brain import (
    AtlasAlignedExtractor,
    TemplateBrainExtractor,
    make_brain_extractor,
)
from rgcds.settings import PreprocessingSettings


def test_default_is_the_learned_extractor_with_the_atlas_registration() -> None:
    settings = Settings()
    assert settings.preprocessing.brain_extractor == "deepbet"
    assert settings.preprocessing.deepbet_crop == 192
    extractor = make_brain_extractor(settings.preprocessing)
    assert isinstance(extractor, AtlasAlignedExtractor)
    assert isinstance(extractor.atlas, TemplateBrainExtractor)
    assert extractor.last_transform is None  # set by a call


def test_template_is_selectable() -> None:
    settings = Settings(preprocessing={"brain_extractor": "template"})  # type: ignore[arg-type]
    assert isinstance(make_brain_extractor(settings.preprocessing), TemplateBrainExtractor)


@pytest.mark.parametrize(
    "bad",
    [{"brain_extractor": "bet"}, {"deepbet_crop": 200}, {"deepbet_crop": 64},
     {"threads": 0}, {"unknown": 1}],
)
def test_bad_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PreprocessingSettings(**bad)  # type: ignore[arg-type]
