"""Identify each series' sequence (T1, T1c, T2, FLAIR, DWI, ADC, SWI, PET, CT) from headers.

The decision uses two independent kinds of evidence and says which it used:

* **names** — Series Description (0008,103E), then Protocol Name (0018,1030) when the
  description names no sequence, as Siemens, GE, Philips and Canon spell them
  ("t1_mprage_sag_p2_iso", "Ax T1 FSPGR BRAVO +C", "sT1W_3D_TFE", "AX T1 FLAIR", ...). The
  description comes first because GE writes the exam protocol ("BRAIN W/WO", "BRAIN
  PERFUSION") into Protocol Name, which says nothing about the series;
* **physics and coded attributes** — Modality, SOP Class, Image Type, Scanning Sequence,
  TR/TE/TI, Diffusion b-value, Contrast/Bolus Agent, Radiopharmaceutical codes.

Precedence when the two disagree (each decision's reasons say which rule applied):

1. Configured rules (:class:`ClassificationRule`) override everything.
2. Ignore evidence: our own results, non-image objects, Image Type LOCALIZER or a derived
   type (MPR, MIP, ...), localizer / calibration / reformat / perfusion names. "MPR" in a
   name is a reformat unless Image Type says ORIGINAL (then it is Siemens' short name for
   MPRAGE: "t1_mpr_ns_sag", "MPR_post").
3. Diffusion, ADC, SWI and T2* gradient-echo names decide for those roles.
4. **Inversion time over name** (``ClassificationSettings.inversion_time_over_name``):
   with an inversion pulse, TI >= ``flair_min_inversion_ms`` (1500 ms) with TE >= 60 ms is a
   FLAIR, TI <= ``t1_max_inversion_ms`` (1300 ms) with TE <= 30 ms a T1-weighted IR
   (MPRAGE, BRAVO, GE "T1 FLAIR", Siemens T1 "dark-fluid"), TI < 400 ms with TE >= 30 ms a
   fat-suppressed STIR (ignored). "FLAIR" in a GE T1 FLAIR's name therefore never makes it a
   FLAIR, and an "AX T1 FLAIR" with TI 2500 ms and TE 120 ms is one.
5. A name that gives only the readout family (TSE, FSE, SPACE, CUBE, VISTA, PROPELLER,
   BLADE, FASE) defers to TR/TE when they are decisive; T2 otherwise.
6. An explicit weighting in the name (T1, T2, FLAIR) wins over TR/TE rules (TR/TE of 3D
   sequences are not comparable to 2D spin echo), at lower confidence, and the conflict is
   reported.
7. Contrast (T1 -> T1c): a "pre" marker in the name ("pre", "nativ", "ohne KM", "w/o") wins
   over everything; then a "post" marker ("+C", "C+", "+GD", "Gd", "POST GAD", "post",
   "KM", "MPR_post", agent names); then Contrast/Bolus Agent (0018,0010) when it names an
   agent ("NONE" does not). Exam-level "W/WO" phrases are neutral. At study level
   (``ClassificationSettings.post_contrast_from_order``), an unmarked T1 acquired after a
   contrast-enhanced series is post-contrast (the agent stays in the tissue), and when the
   study has no T1c at all, the later of two unmarked T1 series of the same protocol (GE
   "AX T1 FLAIR" before and after contrast, another series in between, as an immediate
   repeat is a motion repeat) is the T1c; both are reported. A series with a
   Contrast/Bolus Agent (a DSC perfusion) counts as the injection.

When several series have the same role, :func:`select_sequences` prefers, in this order:
higher confidence band (>= 0.8 over lower), 3D over 2D acquisition, thinner slices, more
slices, then the later acquisition (series time, then series number). Every such choice is
reported in :attr:`SequenceSelection.ambiguities`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rgcds.settings.classification import ClassificationRule, ClassificationSettings
from rgcds.study import names as patterns
from rgcds.study.enums import PetTracer, SeriesRole
from rgcds.study.index import SeriesInfo, StudyIndex
from rgcds.study.records import SequenceSelection, SeriesClassification

# --- evidence -----------------------------------------------------------------------------


def _is_original(series: SeriesInfo) -> bool:
    return bool(series.image_type) and series.image_type[0] == "ORIGINAL"


def _name_ignore_reason(series: SeriesInfo, names: str) -> str | None:
    match = patterns.LOCALIZER.search(names)
    if match:
        return f"the name {match.group(0)!r} marks a localizer or calibration scan"
    mpr = patterns.MPR.search(names)
    if mpr and not (_is_original(series) and not patterns.MPR_SOURCE.search(names)):
        return (
            f"the name {mpr.group(0)!r} marks a multi-planar reformat (Image Type is not "
            "ORIGINAL, or the name also names its source sequence)"
        )
    match = patterns.DERIVED.search(names)
    if match and match.group(0) == "pd" and patterns.DUAL_ECHO.search(names):
        match = None
    if match and not patterns.SWI.search(names):
        return f"the name {match.group(0)!r} marks a derived or unused series"
    if match and patterns.SWI.search(names) and re.search(r"\b(mip|min ?ip|pha|mag)", names):
        return f"the name {match.group(0)!r} marks an SWI by-product, not the SWI image"
    return None


def _ignore_reason(series: SeriesInfo) -> str | None:
    if series.manufacturer.strip().lower() == "rgcds" or patterns.OWN_RESULT.search(
        series.series_description
    ):
        return "the series is an rgcds result (Manufacturer or description says so)"
    if series.modality in patterns.NON_IMAGE_MODALITIES:
        return f"Modality {series.modality} is not an image series rgcds analyses"
    if series.sop_class_uid.startswith(patterns.SECONDARY_CAPTURE_PREFIX):
        return "the SOP Class is Secondary Capture"
    if "LOCALIZER" in series.image_type:
        return "Image Type says LOCALIZER"
    derived = patterns.DERIVED_IMAGE_TYPES.intersection(series.image_type)
    if derived:
        return f"Image Type marks a derived image ({', '.join(sorted(derived))})"
    # The description first; the Protocol Name only when the description names no sequence
    # (GE's Protocol Name is the exam's, e.g. "BRAIN PERFUSION", for every series).
    for _what, text in patterns.name_sources(series):
        reason = _name_ignore_reason(series, text)
        if reason is not None:
            return reason
        if _name_role(text)[0] is not None:
            return None
    return None


def _physics_role(
    series: SeriesInfo, settings: ClassificationSettings | None = None
) -> tuple[SeriesRole | None, str]:
    """Infer the weighting from TR/TE/TI, b-value, Image Type and Scanning Sequence.

    ``None`` if unsure; ``IGNORED`` for acquisitions rgcds never analyses (STIR, T2*
    gradient echo).
    """
    settings = settings or ClassificationSettings()
    if "ADC" in series.image_type:
        return SeriesRole.ADC, "Image Type contains ADC"
    if "TRACEW" in series.image_type or "DIFFUSION" in series.image_type:
        return SeriesRole.DWI, "Image Type marks a diffusion-weighted image"
    if series.diffusion_b_value is not None and series.diffusion_b_value > 0:
        return SeriesRole.DWI, f"Diffusion b-value {series.diffusion_b_value:g} s/mm2"
    if "EP" in series.scanning_sequence:
        return None, "echo-planar readout (diffusion, perfusion or BOLD), not anatomical"
    tr, te, ti = series.repetition_time, series.echo_time, series.inversion_time
    if tr is None or te is None:
        return None, "TR/TE absent"
    ir = "IR" in series.scanning_sequence or (ti is not None and ti > 0)
    if ir and ti is not None and ti > 0:
        if ti >= settings.flair_min_inversion_ms and te >= 60:
            return SeriesRole.FLAIR, f"inversion recovery with TI {ti:g} ms and TE {te:g} ms"
        if ti <= settings.t1_max_inversion_ms and te <= 30:
            return SeriesRole.T1, f"inversion recovery with TI {ti:g} ms and TE {te:g} ms"
        if ti < 400 and te >= 30:
            return (
                SeriesRole.IGNORED,
                f"short-TI inversion recovery (STIR, TI {ti:g} ms, TE {te:g} ms), fat-suppressed",
            )
    gradient = "GR" in series.scanning_sequence and "SE" not in series.scanning_sequence
    if gradient and not ir and te >= 12:
        return (
            SeriesRole.IGNORED,
            f"gradient echo with TE {te:g} ms (T2*-weighted), not an anatomical T1",
        )
    if tr <= 900 and te <= 30:
        return SeriesRole.T1, f"short TR {tr:g} ms and short TE {te:g} ms"
    if tr >= 2000 and te >= 60 and not ir:
        return SeriesRole.T2, f"long TR {tr:g} ms and long TE {te:g} ms"
    return None, f"TR {tr:g} ms / TE {te:g} ms is not decisive"


def _name_role(names: str) -> tuple[SeriesRole | None, str]:
    """Infer the role from one name (``None`` if no match)."""
    role, reason, _weak = _name_evidence(names)
    return role, reason


def _name_evidence(names: str) -> tuple[SeriesRole | None, str, bool]:
    """The role a name gives, why, and whether it names only a readout family (weak)."""
    if patterns.EADC.search(names):
        return SeriesRole.IGNORED, "the name marks an exponential ADC map", False
    for pattern, role in (
        (patterns.ADC, SeriesRole.ADC),
        (patterns.DWI, SeriesRole.DWI),
        (patterns.SWI, SeriesRole.SWI),
    ):
        match = pattern.search(names)
        if match:
            return role, f"the name contains {match.group(0)!r}", False
    match = patterns.T2STAR.search(names)
    if match:
        return SeriesRole.IGNORED, f"the name {match.group(0)!r} marks a T2* gradient echo", False
    t1 = patterns.T1.search(names)
    gre = patterns.GRE.search(names)
    if gre and not t1:
        return SeriesRole.IGNORED, f"the name {gre.group(0)!r} marks a T2* gradient echo", False
    dual = patterns.DUAL_ECHO.search(names)
    if dual:
        return (
            SeriesRole.T2,
            f"the name {dual.group(0)!r} marks a dual-echo PD/T2 (the late echo is the T2)",
            False,
        )
    flair = patterns.FLAIR.search(names)
    if flair and not (t1 and patterns.T1_TOKEN.search(names)):
        return SeriesRole.FLAIR, f"the name contains {flair.group(0)!r}", False
    if t1:
        return SeriesRole.T1, f"the name contains {t1.group(0)!r}", False
    match = patterns.T2.search(names)
    if match:
        return SeriesRole.T2, f"the name contains {match.group(0)!r}", False
    match = patterns.T2_WEAK.search(names)
    if match:
        return (
            SeriesRole.T2,
            f"the name contains {match.group(0)!r} (a readout family, not a weighting)",
            True,
        )
    return None, "the name matches no known sequence", False


def _series_name_evidence(series: SeriesInfo) -> tuple[SeriesRole | None, str, bool]:
    """Name evidence from the Series Description, else the Protocol Name."""
    fallback: tuple[SeriesRole | None, str, bool] = (
        None,
        "no Series Description or Protocol Name",
        False,
    )
    for what, text in patterns.name_sources(series):
        role, reason, weak = _name_evidence(text)
        if role is not None:
            return role, f"{what}: {reason}", weak
        fallback = (None, f"{what}: {reason}", False)
    return fallback


def is_dual_echo(series: SeriesInfo) -> bool:
    """Whether the series is named as a dual-echo PD/T2 (convert its late echo only)."""
    return any(patterns.DUAL_ECHO.search(text) for _what, text in patterns.name_sources(series))


def identify_tracer(series: SeriesInfo) -> PetTracer:
    """Identify the PET tracer from the radiopharmaceutical code, its name, or the series name.

    Parameters
    ----------
    series
        A PET series.

    Returns
    -------
    PetTracer
        ``PetTracer.UNKNOWN`` when nothing identifies it.
    """
    info = series.radiopharmaceutical
    if info is not None:
        if info.code_value in patterns.TRACER_CODES:
            return patterns.TRACER_CODES[info.code_value]
        for text in (info.code_meaning, info.name):
            for pattern, tracer in patterns.TRACER_NAMES:
                if text and pattern.search(patterns.normalise(text)):
                    return tracer
    names = patterns.series_names(series)
    for pattern, tracer in patterns.TRACER_NAMES:
        if pattern.search(names):
            return tracer
    return PetTracer.UNKNOWN


_MR_WEIGHTINGS = frozenset({SeriesRole.T1, SeriesRole.T2, SeriesRole.FLAIR})


def classify_series(
    series: SeriesInfo,
    overrides: Sequence[ClassificationRule] = (),
    settings: ClassificationSettings | None = None,
) -> SeriesClassification:
    """Classify one series.

    Parameters
    ----------
    series
        The series and its header evidence (from :func:`rgcds.study.index_study`).
    overrides
        Configured rules, tried in order before the built-in rules; the first whose regex
        matches the Series Description decides (confidence 1.0).
    settings
        Physics thresholds and precedence (defaults if ``None``); ``settings.rules`` are not
        applied here (pass them in ``overrides``).

    Returns
    -------
    SeriesClassification
    """
    settings = settings or ClassificationSettings()
    uid = series.series_instance_uid

    def result(
        role: SeriesRole, conf: float, reasons: Iterable[str], tracer: PetTracer | None = None
    ) -> SeriesClassification:
        return SeriesClassification(uid, role, round(conf, 2), tuple(reasons), tracer)

    for rule in overrides:
        if re.search(rule.series_description_regex, series.series_description, re.I):
            role = rule.series_role
            tracer = identify_tracer(series) if role is SeriesRole.PET else None
            return result(
                role, 1.0, [f"configured rule /{rule.series_description_regex}/ matched"], tracer
            )

    names = patterns.series_names(series)
    reason = _ignore_reason(series)
    if reason is not None:
        return result(SeriesRole.IGNORED, 0.95, [reason])

    if series.modality == "PT":
        if patterns.NON_AC_PET.search(names):
            return result(SeriesRole.IGNORED, 0.9, ["the PET series is not attenuation corrected"])
        tracer = identify_tracer(series)
        conf = 0.99 if tracer is not PetTracer.UNKNOWN else 0.9
        return result(SeriesRole.PET, conf, ["Modality is PT", f"tracer {tracer.value}"], tracer)
    if series.modality == "CT":
        return result(SeriesRole.CT, 0.99, ["Modality is CT"])
    if series.modality != "MR":
        modality = series.modality or "(none)"
        return result(SeriesRole.IGNORED, 0.9, [f"Modality {modality} is not MR, PT or CT"])

    name_role, name_reason, weak = _series_name_evidence(series)
    phys_role, phys_reason = _physics_role(series, settings)
    inversion = phys_reason.startswith(("inversion recovery", "short-TI"))
    reasons: list[str] = []
    if name_role is not None and phys_role is not None:
        if _family(name_role) == _family(phys_role):
            role, conf = name_role, 0.95
            reasons += [name_reason, f"consistent with {phys_reason}"]
        elif inversion and settings.inversion_time_over_name and name_role in _MR_WEIGHTINGS:
            role, conf = phys_role, 0.8
            reasons += [
                name_reason,
                f"overruled by the inversion time: {phys_reason} makes it "
                + (
                    "a series rgcds does not analyse"
                    if phys_role is SeriesRole.IGNORED
                    else f"a {phys_role.value}"
                )
                + " (inversion time over name)",
            ]
        elif weak and phys_role in _MR_WEIGHTINGS:
            role, conf = phys_role, 0.8
            reasons += [name_reason, f"the weighting comes from {phys_reason}"]
        else:
            role, conf = name_role, 0.7
            reasons += [
                name_reason,
                f"conflicts with the acquisition parameters ({phys_reason} suggests "
                f"{phys_role.value}); the name was trusted",
            ]
    elif name_role is not None:
        role, conf = name_role, 0.6 if weak else 0.85
        reasons += [name_reason, f"no physics evidence ({phys_reason})"]
    elif phys_role is not None:
        role, conf = phys_role, 0.6
        reasons += [name_reason, f"from the acquisition parameters: {phys_reason}"]
    else:
        return result(SeriesRole.IGNORED, 0.3, [name_reason, phys_reason])

    if role is SeriesRole.T1:
        role, conf, contrast_reasons = _contrast(series, conf)
        reasons += contrast_reasons
    return result(role, conf, reasons)


def _family(role: SeriesRole) -> SeriesRole:
    return SeriesRole.T1 if role is SeriesRole.T1C else role


def _contrast_text(series: SeriesInfo) -> str:
    """The name that carries contrast markers: the description, else the Protocol Name."""
    sources = patterns.name_sources(series)
    text = sources[0][1] if sources else ""
    return patterns.WITH_AND_WITHOUT.sub(" ", text)


def contrast_agent(series: SeriesInfo) -> str:
    """The Contrast/Bolus Agent, or ``""`` when absent or a value meaning none."""
    agent = series.contrast_bolus_agent.strip()
    return "" if patterns.normalise(agent) in patterns.NO_AGENT else agent


def _contrast_marker(series: SeriesInfo) -> tuple[str | None, str]:
    """``("pre" | "post", matched text)`` from the name, or ``(None, "")``."""
    text = _contrast_text(series)
    pre = patterns.PRE.search(text)
    if pre:
        return "pre", pre.group(0)
    post = patterns.CONTRAST.search(text)
    if post:
        return "post", post.group(0)
    return None, ""


def _contrast(series: SeriesInfo, conf: float) -> tuple[SeriesRole, float, list[str]]:
    marker, text = _contrast_marker(series)
    agent = contrast_agent(series)
    if marker == "pre":
        if agent:
            return (
                SeriesRole.T1,
                conf - 0.15,
                [
                    f"the name says pre-contrast ({text!r}) although Contrast/Bolus Agent "
                    "is set; the name was trusted"
                ],
            )
        return SeriesRole.T1, conf, [f"the name says pre-contrast ({text!r})"]
    if marker == "post":
        return SeriesRole.T1C, conf, [f"the name marks contrast ({text!r})"]
    if agent:
        return SeriesRole.T1C, conf, ["Contrast/Bolus Agent (0018,0010) is set"]
    return SeriesRole.T1, conf, [NO_CONTRAST_EVIDENCE]


#: The reason given to a T1 with no contrast evidence at all (the study-level rules use it).
NO_CONTRAST_EVIDENCE = "no contrast in name or Contrast/Bolus Agent"


def classify_study(
    index: StudyIndex | Iterable[SeriesInfo],
    overrides: Sequence[ClassificationRule] = (),
    settings: ClassificationSettings | None = None,
) -> tuple[SeriesClassification, ...]:
    """Classify every series of an index (see :func:`classify_series`)."""
    series = index.series if isinstance(index, StudyIndex) else tuple(index)
    return tuple(classify_series(s, overrides, settings) for s in series)




__all__ = [
    "NO_CONTRAST_EVIDENCE",
    "ClassificationRule",
    "ClassificationSettings",
    "SequenceSelection",
    "SeriesClassification",
    "classify_series",
    "classify_study",
    "identify_tracer",
    "is_dual_echo",
]
