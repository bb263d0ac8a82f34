"""Synthetic clinical variables and molecular markers of a phantom patient.

The generative model (all draws from the subject's seeded random generator) is a small causal
chain, so that a radiogenomics model trained on a cohort of phantoms has real, noisy signal to
find. The associations follow the glioblastoma literature qualitatively; the effect sizes are
made up and must not be read as clinical facts.

1. **IDH mutation** (``idh_mutant``): prevalence 15 % (enriched over the ~10 % of the
   pre-2021 GBM population so a cohort has positives).
2. **Age**: IDH-mutant patients are younger, ``N(40, 11)`` years vs ``N(62, 11)`` for IDH
   wild type, clipped to 18-89. **Sex**: 60 % male. **Weight** ``N(82, 13)`` kg (male) or
   ``N(68, 12)`` kg (female), clipped to 45-140; **height** similarly.
3. **MGMT promoter methylation**: 75 % if IDH-mutant, else 40 %.
4. **EGFR amplification**: 5 % if IDH-mutant, else 40 %.
5. **Location**: hemisphere 50/50; lobe probabilities frontal/temporal/parietal/occipital are
   0.60/0.15/0.17/0.08 for IDH-mutant (frontal predilection) and 0.30/0.35/0.25/0.10 for
   IDH wild type.
6. **Tumour size and composition** (whole tumour, WT = necrosis + enhancing + oedema):
   WT volume log-normal, median 60 cm3, clipped to 20-150 cm3.
   Oedema fraction of WT ``N(0.62, 0.08)``, plus 0.12 with EGFR amplification (more
   oedema), clipped to 0.40-0.85. Necrotic fraction of the core ``N(0.42, 0.10)`` for IDH
   wild type vs ``N(0.18, 0.08)`` for IDH-mutant (less necrosis). The enhancement strength on
   T1c (ratio to white matter) is 1.45-1.80 for IDH wild type and 1.20-1.45 for IDH-mutant
   (less enhancement); MET uptake of the enhancing tumour is lower for IDH-mutant.
7. **Overall survival** (days) from a Weibull model (shape 1.4) whose median for a 60-year
   old IDH-wt, MGMT-unmethylated patient with a 30 cm3 core is about 420 days; log hazard
   ratio ``+0.035/year`` of age above 60, ``-0.55`` MGMT methylated (longer survival),
   ``-0.90`` IDH-mutant, ``+0.15`` EGFR amplified, ``+0.35 * log(core / 30 cm3)`` where the
   core is the *measured* necrotic + enhancing volume (larger enhancing/necrotic tumours live
   shorter). Follow-up is censored uniformly at 360-1800 days, plus 5 % lost to follow-up
   earlier, so ``death_observed`` (the event) is false for some patients.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LOBES: tuple[str, ...] = ("frontal", "temporal", "parietal", "occipital")
_LOBE_P_IDH_MUT = (0.60, 0.15, 0.17, 0.08)
_LOBE_P_IDH_WT = (0.30, 0.35, 0.25, 0.10)


@dataclass(frozen=True)
class TumourParameters:
    """Parameters and measured volumes of the simulated glioblastoma.

    Attributes
    ----------
    hemisphere : str
        ``"left"`` or ``"right"`` (patient's side).
    lobe : str
        One of :data:`LOBES`.
    centre_template_mm : tuple of float
        Tumour centre in template (MNI, LPS) coordinates, mm.
    target_whole_tumour_ml : float
        Whole-tumour volume the generator aimed for.
    necrosis_ml, enhancing_ml, oedema_ml : float
        Measured label volumes in template space (labels 1, 3, 2).
    whole_tumour_ml, core_ml : float
        Sums: all three labels, and necrosis + enhancing.
    irregularity : float
        Amplitude of the shape noise (0 = sphere).
    mass_effect_mm : float
        Peak displacement of the surrounding tissue.
    enhancement_ratio : float
        T1c signal of enhancing tumour relative to normal white matter.
    pet_suv_enhancing : float
        SUV of enhancing tumour before the PET point-spread blur.
    pet_suv_infiltration : float
        Extra SUV of non-enhancing tumour next to the core (decays into the oedema).
    """

    hemisphere: str
    lobe: str
    centre_template_mm: tuple[float, float, float]
    target_whole_tumour_ml: float
    necrosis_ml: float
    enhancing_ml: float
    oedema_ml: float
    whole_tumour_ml: float
    core_ml: float
    irregularity: float
    mass_effect_mm: float
    enhancement_ratio: float
    pet_suv_enhancing: float
    pet_suv_infiltration: float


@dataclass(frozen=True)
class ClinicalVariables:
    """Synthetic patient, markers, outcome and tumour parameters of one phantom.

    Attributes
    ----------
    seed : int
        The phantom seed.
    age_years : int
        Age at the study date.
    sex : str
        ``"M"`` or ``"F"`` (DICOM PatientSex).
    weight_kg, height_m : float
        Body weight (for SUVbw) and height.
    idh_mutant, mgmt_methylated, egfr_amplified : bool
        Synthetic molecular markers.
    overall_survival_days : int
        Time from the study to death or censoring.
    death_observed : bool
        True if the patient died at ``overall_survival_days`` (event), False if censored.
    tumour : TumourParameters
        The tumour that was simulated.
    """

    seed: int
    age_years: int
    sex: str
    weight_kg: float
    height_m: float
    idh_mutant: bool
    mgmt_methylated: bool
    egfr_amplified: bool
    overall_survival_days: int
    death_observed: bool
    tumour: TumourParameters

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary (the ``clinical.json`` content)."""
        data = asdict(self)
        data["tumour"]["centre_template_mm"] = list(self.tumour.centre_template_mm)
        return data


@dataclass(frozen=True)
class BaselineDraw:
    """Patient-level draws made before the tumour is built (internal to the generator)."""

    age_years: int
    sex: str
    weight_kg: float
    height_m: float
    idh_mutant: bool
    mgmt_methylated: bool
    egfr_amplified: bool
    hemisphere: str
    lobe: str
    whole_tumour_ml: float
    oedema_fraction: float
    necrosis_fraction: float
    irregularity: float
    enhancement_ratio: float
    pet_suv_enhancing: float
    pet_suv_infiltration: float


def draw_baseline(rng: np.random.Generator) -> BaselineDraw:
    """Draw the patient, markers and tumour targets (steps 1-6 of the module docstring).

    Parameters
    ----------
    rng : numpy.random.Generator
        The subject's clinical random stream.

    Returns
    -------
    BaselineDraw
        The draws.
    """
    idh = bool(rng.random() < 0.15)
    age = round(float(np.clip(rng.normal(40.0 if idh else 62.0, 11.0), 18, 89)))
    sex = "M" if rng.random() < 0.60 else "F"
    if sex == "M":
        weight = float(np.clip(rng.normal(82.0, 13.0), 45.0, 140.0))
        height = float(np.clip(rng.normal(1.78, 0.07), 1.50, 2.05))
    else:
        weight = float(np.clip(rng.normal(68.0, 12.0), 45.0, 140.0))
        height = float(np.clip(rng.normal(1.65, 0.06), 1.45, 1.90))
    mgmt = bool(rng.random() < (0.75 if idh else 0.40))
    egfr = bool(rng.random() < (0.05 if idh else 0.40))
    hemisphere = "left" if rng.random() < 0.5 else "right"
    lobe = LOBES[int(rng.choice(len(LOBES), p=_LOBE_P_IDH_MUT if idh else _LOBE_P_IDH_WT))]
    wt = float(np.clip(60.0 * math.exp(rng.normal(0.0, 0.45)), 20.0, 150.0))
    oedema = float(np.clip(rng.normal(0.62, 0.08) + (0.12 if egfr else 0.0), 0.40, 0.85))
    necrosis = float(np.clip(rng.normal(0.18, 0.08) if idh else rng.normal(0.42, 0.10), 0.03, 0.65))
    irregularity = float(rng.uniform(0.12, 0.35))
    enhancement = float(rng.uniform(1.20, 1.45) if idh else rng.uniform(1.45, 1.80))
    suv_et = float(rng.uniform(3.0, 4.0) if idh else rng.uniform(3.8, 5.2))
    suv_inf = float(rng.uniform(0.6, 1.4))
    return BaselineDraw(
        age_years=age,
        sex=sex,
        weight_kg=round(weight, 1),
        height_m=round(height, 2),
        idh_mutant=idh,
        mgmt_methylated=mgmt,
        egfr_amplified=egfr,
        hemisphere=hemisphere,
        lobe=lobe,
        whole_tumour_ml=wt,
        oedema_fraction=oedema,
        necrosis_fraction=necrosis,
        irregularity=irregularity,
        enhancement_ratio=enhancement,
        pet_suv_enhancing=suv_et,
        pet_suv_infiltration=suv_inf,
    )


def draw_survival(
    rng: np.random.Generator, baseline: BaselineDraw, core_ml: float
) -> tuple[int, bool]:
    """Draw overall survival and the event flag (step 7 of the module docstring).

    Parameters
    ----------
    rng : numpy.random.Generator
        The subject's outcome random stream.
    baseline : BaselineDraw
        Patient-level draws.
    core_ml : float
        Measured necrotic + enhancing volume in cm3.

    Returns
    -------
    tuple of (int, bool)
        Survival days and whether death was observed.
    """
    shape = 1.4
    median_ref = 420.0
    log_hr = (
        0.035 * (baseline.age_years - 60)
        - 0.55 * baseline.mgmt_methylated
        - 0.90 * baseline.idh_mutant
        + 0.15 * baseline.egfr_amplified
        + 0.35 * math.log(max(core_ml, 1.0) / 30.0)
    )
    # Weibull proportional hazards: S(t) = exp(-(t/scale)^k * exp(log_hr)).
    scale_ref = median_ref / math.log(2.0) ** (1.0 / shape)
    u = float(rng.random())
    t_death = scale_ref * (-math.log(1.0 - u) / math.exp(log_hr)) ** (1.0 / shape)
    censor = float(rng.uniform(360.0, 1800.0))
    if rng.random() < 0.05:
        censor = float(rng.uniform(30.0, censor))
    if t_death <= censor:
        return max(1, round(t_death)), True
    return max(1, round(censor)), False
