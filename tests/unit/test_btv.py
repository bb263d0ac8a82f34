"""The BTV's plausibility rules with planted confounders, and the CTV's sanity check.

A post-operative head on a 2 mm PET grid: a resection cavity, a residual nodule on its wall
(TBR 2.1), and the uptake the guideline threshold (MET 1.3) also catches but that is not
tumour: deep grey matter at TBR 1.33 next to the cavity and across the midline, the cortical
ribbon at 1.33, the surgical margin at 1.24, bone marrow at 1.5 and salivary glands at 2.9
outside a brain mask that leaks 4 mm into the skull; 5 mm FWHM blur. Noise (SD 0.08, 1-voxel
correlation)
carries the 1.2-1.3 confounders over the threshold in patches, as on a real scan.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage

from rgcds.analysis.btv import (
    FAR_FROM_TUMOUR,
    GREY_MATTER,
    SURGICAL_MARGIN,
    TOO_SMALL,
    TRIMMED,
    select_btv,
)
from rgcds.analysis.ctv import compact_ctv_bound_ml, ctv_refusal, derive_ctv
from rgcds.analysis.pet import PetMeasurements, analyse_pet
from rgcds.settings.pet import PetSettings
from rgcds.study.enums import PetQuantity, PetTracer
from rgcds.study.suv import SuvResult

SPACING = 2.0
SIZE = (90, 100, 80)  # x, y, z
SUV = SuvResult(PetQuantity.SUVBW, 1.0, "test values are SUVbw")
CAVITY_CENTRE = (42.0, 0.0, 10.0)  # LPS x, y, z (mm): the patient's left
CAVITY_RADIUS = 15.0


def _coords() -> tuple[NDArray[np.float64], ...]:
    axes = [(np.arange(n) - (n - 1) / 2.0) * SPACING for n in reversed(SIZE)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    return z, y, x


def _image(array: NDArray[np.generic]) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((SPACING,) * 3)
    image.SetOrigin(tuple(-(n - 1) / 2.0 * SPACING for n in SIZE))
    return image


def _ball(centre: tuple[float, float, float], radius: float) -> NDArray[np.bool_]:
    z, y, x = _coords()
    return np.asarray(
        (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius**2
    )


def _head(
    residual: bool = True, nodule_tbr: float = 2.2, seed: int = 0
) -> dict[str, NDArray[np.bool_] | NDArray[np.float32]]:
    z, y, x = _coords()
    brain = (x / 70.0) ** 2 + (y / 80.0) ** 2 + (z / 60.0) ** 2 <= 1.0
    skull = ((x / 78.0) ** 2 + (y / 88.0) ** 2 + (z / 68.0) ** 2 <= 1.0) & ~brain
    leaky_brain = ndimage.binary_dilation(brain, iterations=2)  # 4 mm into the skull
    inner = (x / 67.0) ** 2 + (y / 77.0) ** 2 + (z / 57.0) ** 2 <= 1.0
    cortex = brain & ~inner
    cavity = _ball(CAVITY_CENTRE, CAVITY_RADIUS) & brain
    distance = ndimage.distance_transform_edt(~cavity, sampling=SPACING)
    margin = (distance > 0) & (distance <= 4.0) & brain
    around = ((y + 14.0) / 14.0) ** 2 + ((z - 6.0) / 9.0) ** 2
    thalamus_left = ((x - 16.0) / 9.0) ** 2 + around <= 1
    thalamus_right = ((x + 12.0) / 9.0) ** 2 + around <= 1
    deep_gm = (thalamus_left | thalamus_right) & ~cavity
    glands = _ball((45.0, 20.0, -72.0), 10.0) | _ball((-45.0, 20.0, -72.0), 10.0)
    nodule = _ball((CAVITY_CENTRE[0] + CAVITY_RADIUS + 5.0, 0.0, 10.0), 8.0) & brain & ~cavity
    pet = np.zeros(brain.shape, np.float32)
    pet[brain] = 1.0
    # The background VOI (grey and white matter) averages about 1.05: grey matter at 1.4 is
    # TBR 1.33, the margin at 1.3 is TBR 1.24.
    pet[cortex | deep_gm] = 1.45
    pet[margin] = 1.35
    pet[cavity] = 0.6
    pet[skull] = 1.6  # marrow
    pet[glands] = 3.0
    if residual:
        pet[nodule] = nodule_tbr
    pet = ndimage.gaussian_filter(pet, 5.0 / 2.355 / SPACING)  # 5 mm FWHM
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=brain.shape), 1.0)
    pet += (0.08 * noise / noise.std()).astype(np.float32)
    return {
        "pet": pet, "brain": brain, "leaky_brain": leaky_brain, "cavity": cavity,
        "nodule": nodule if residual else np.zeros_like(nodule), "grey": cortex | deep_gm,
        "deep_gm": deep_gm, "outside": ~brain,
    }


def _analyse(head: dict[str, NDArray], **kwargs: object) -> PetMeasurements:
    cavity = _image(head["cavity"].astype(np.uint8))
    leaky = _image(head["leaky_brain"].astype(np.uint8))
    params: dict[str, object] = dict(
        ctv=derive_ctv(leaky, cavity=cavity).ctv,
        tracer=PetTracer.MET, suv=SUV,
        brain_mask=leaky,
        tumour_mask=cavity, cavity_mask=cavity,
        grey_matter=_image(head["grey"].astype(np.uint8)),
    )
    params.update(kwargs)
    result = analyse_pet(_image(head["pet"]), **params)  # type: ignore[arg-type]
    assert isinstance(result, PetMeasurements), result
    return result


def _btv(result: PetMeasurements) -> NDArray[np.bool_]:
    return np.asarray(sitk.GetArrayFromImage(result.btv_pet)) > 0


def _dice(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_residual_nodule_is_kept_and_confounders_are_left_out() -> None:
    head = _head()
    result = _analyse(head)
    btv = _btv(result)
    # The blurred nodule's supra-threshold halo makes its BTV larger than the truth.
    assert _dice(btv, head["nodule"]) >= 0.75
    near_nodule = ndimage.distance_transform_edt(~head["nodule"], sampling=SPACING) <= 4.0
    assert not (btv & head["outside"] & ~near_nodule).any(), "marrow or glands in the BTV"
    assert not (btv & head["deep_gm"]).any(), "deep grey matter in the BTV"
    # The guideline BTV (every supra-threshold voxel) was about twice as large.
    assert result.btv_candidate_ml > 1.8 * result.btv_ml
    reasons = {c.excluded for c in result.btv_excluded}
    assert TRIMMED in reasons  # grey matter and margin merged with the nodule's halo
    assert any("left out as not residual tumour" in n for n in result.notes)


def test_without_residual_the_btv_is_empty_or_tiny() -> None:
    for seed in range(3):
        result = _analyse(_head(residual=False, seed=seed))
        assert result.btv_ml < 0.5, (seed, result.btv_ml, result.btv_excluded)
        assert result.btv_candidate_ml > 2.5
        assert FAR_FROM_TUMOUR in {c.excluded for c in result.btv_excluded}
    # The grey-matter rule alone (no distance rule) explains the same uptake.
    alone = _analyse(_head(residual=False), settings=PetSettings(btv_max_distance_mm=1e6))
    assert alone.btv_ml < 0.5
    assert GREY_MATTER in {c.excluded for c in alone.btv_excluded}


def test_without_the_rules_the_confounders_are_in_the_btv() -> None:
    """The same head with every rule switched off: the guideline's BTV, far too large."""
    head = _head()
    off = PetSettings(btv_min_component_ml=0.0, btv_max_distance_mm=1e6, btv_brain_edge_mm=0.0)
    result = _analyse(head, settings=off, grey_matter=None, cavity_mask=None)
    assert not result.btv_excluded
    assert result.btv_ml == pytest.approx(result.btv_candidate_ml)
    assert _dice(_btv(result), head["nodule"]) < 0.5


def test_hot_tumour_in_grey_matter_is_kept() -> None:
    """Tumour sits in grey matter too: above threshold x factor no prior explains it away."""
    head = _head(residual=False)
    hot = _ball((CAVITY_CENTRE[0] - CAVITY_RADIUS - 5.0, 0.0, 10.0), 7.0) & ~head["cavity"]
    head["grey"] = head["grey"] | hot
    head["pet"][hot] = 2.4
    result = _analyse(head)
    btv = _btv(result)
    assert (btv & hot).sum() >= 0.8 * hot.sum()


def test_far_component_is_left_out_but_only_after_surgery() -> None:
    head = _head(residual=False)
    far = _ball((-30.0, 30.0, 20.0), 9.0)
    head["pet"][far] = 2.5
    whole = _image(head["leaky_brain"].astype(np.uint8))
    post = _analyse(head, ctv=whole)
    assert not (_btv(post) & far).any()
    assert FAR_FROM_TUMOUR in {c.excluded for c in post.btv_excluded}
    # Before surgery (no cavity) amino-acid uptake reaches beyond the enhancing tumour: kept.
    pre = _analyse(head, ctv=whole, cavity_mask=None, tumour_mask=_image(far.astype(np.uint8)))
    assert (_btv(pre) & far).sum() >= 0.9 * far.sum()


def test_select_btv_rules_one_by_one() -> None:
    shape = (20, 20, 20)
    spacing = (2.0, 2.0, 2.0)
    tbr = np.full(shape, 1.0)
    candidate = np.zeros(shape, bool)
    candidate[2:4, 2:4, 2:4] = True  # 8 voxels x 8 ul = 0.064 ml: too small
    tbr[candidate] = 1.4
    assert select_btv(candidate, tbr, spacing, 1.3).components[0].excluded == TOO_SMALL
    big = np.zeros(shape, bool)
    big[5:12, 5:12, 5:12] = True  # 2.7 ml
    tbr[big] = 1.4
    grey = big.copy()
    result = select_btv(big, tbr, spacing, 1.3, grey_matter=grey)
    assert result.components[0].excluded == GREY_MATTER and not result.mask.any()
    tbr[big] = 2.5  # a hot core: smoothed >= 1.3 x 1.25
    assert select_btv(big, tbr, spacing, 1.3, grey_matter=grey).mask.sum() == big.sum()
    tbr[big] = 1.4
    cavity = np.zeros(shape, bool)
    cavity[5:12, 5:12, 12:14] = True
    shell = select_btv(big, tbr, spacing, 1.3, tumour=cavity, cavity=cavity,
                       settings=PetSettings(btv_margin_mm=14.0))
    assert shell.components[0].excluded == SURGICAL_MARGIN
    assert shell.components[0].margin_fraction == pytest.approx(1.0)
    empty = select_btv(np.zeros(shape, bool), tbr, spacing, 1.3)
    assert empty.candidate_ml == 0.0 and empty.note() is None


def test_rule_parameters_are_validated() -> None:
    with pytest.raises(ValueError):
        PetSettings(btv_margin_fraction=0.0)
    with pytest.raises(ValueError):
        PetSettings(btv_confounder_tbr_factor=0.9)
    with pytest.raises(ValueError):
        PetSettings(ctv_max_brain_fraction=1.5)


# --- CTV sanity ---------------------------------------------------------------------------


def test_compact_bound_is_a_grown_ball() -> None:
    r = (3.0 * 30_000.0 / (4.0 * math.pi)) ** (1 / 3)
    assert compact_ctv_bound_ml(30.0, 20.0) == pytest.approx(
        4 / 3 * math.pi * (r + 20.0) ** 3 / 1000.0
    )
    assert compact_ctv_bound_ml(0.0, 10.0) == pytest.approx(4 / 3 * math.pi)


def test_a_compact_derived_ctv_passes() -> None:
    head = _head()
    brain = _image(head["brain"].astype(np.uint8))
    derived = derive_ctv(brain, cavity=_image(head["cavity"].astype(np.uint8)))
    assert ctv_refusal(derived.ctv_ml, 1400.0, gtv_ml=derived.gtv_ml) is None


def test_a_scattered_gtv_gives_a_refused_ctv() -> None:
    """Fifteen 0.3 ml false positives about the brain: the CTV of a failed segmentation."""
    head = _head()
    rng = np.random.default_rng(3)
    z, y, x = _coords()
    scattered = head["cavity"].copy()
    inside = np.argwhere(head["brain"])
    for index in rng.choice(len(inside), 15, replace=False):
        kz, ky, kx = inside[index]
        scattered |= _ball((float(x[kz, ky, kx]), float(y[kz, ky, kx]), float(z[kz, ky, kx])),
                           4.0)
    brain = _image(head["brain"].astype(np.uint8))
    derived = derive_ctv(brain, cavity=_image(scattered.astype(np.uint8)))
    brain_ml = float(head["brain"].sum()) * SPACING**3 / 1000.0
    loose = PetSettings(ctv_max_ml=5000.0, ctv_max_brain_fraction=1.0)
    reason = ctv_refusal(derived.ctv_ml, brain_ml, gtv_ml=derived.gtv_ml, settings=loose)
    assert reason is not None and "scattered" in reason, (derived.ctv_ml, derived.gtv_ml)


def test_absolute_and_brain_fraction_bounds() -> None:
    assert "ctv_max_ml" in str(ctv_refusal(700.0, None))
    assert "ctv_max_brain_fraction" in str(ctv_refusal(500.0, 900.0))
    assert ctv_refusal(300.0, 1400.0) is None
    assert ctv_refusal(300.0, 1400.0, settings=PetSettings(ctv_max_ml=200.0)) is not None
