"""Identify each series' sequence (T1, T1c, T2, FLAIR, DWI, ADC, SWI, PET, CT) from headers.

The decision uses two independent kinds of evidence and says which it used:

* **names** — Series Description (0008,103E) and Protocol Name (0018,1030), as Siemens, GE and
  Philips spell them ("t1_mprage_sag_p2_iso", "Ax T1 FSPGR BRAVO +C", "sT1W_3D_TFE", ...);
* **physics and coded attributes** — Modality, SOP Class, Image Type, Scanning Sequence,
  TR/TE/TI, Diffusion b-value, Contrast/Bolus Agent, Radiopharmaceutical codes.

Names win when the two disagree (a protocol name is what the technologist chose), but the
confidence drops and the conflict is reported. Configured rules (:class:`ClassificationRule`)
override everything.

When several series have the same role, :func:`select_sequences` prefers, in this order:
higher confidence band (>= 0.8 over lower), 3D over 2D acquisition, thinner slices, more
slices, then the later acquisition (series time, then series number). Every such choice is
reported in :attr:`SequenceSelection.ambiguities`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rgcds.study.enums import PetTracer, SeriesRole
from rgcds.study.index import SeriesInfo, StudyIndex

logger = structlog.get_logger(__name__)


# --- settings -----------------------------------------------------------------------------


def _parse_role(value: str) -> SeriesRole:
    for role in SeriesRole:
        if value.strip().lower() in (role.value.lower(), role.name.lower()):
            return role
    allowed = ", ".join(r.value for r in SeriesRole)
    raise ValueError(f"role {value!r} is not one of {allowed}")


class ClassificationRule(BaseModel):
    """A configured rule: a Series Description matching the regex gets this role.

    The regex is searched case-insensitively. ``role`` is one of T1, T1c, T2, FLAIR, DWI,
    ADC, SWI, PET, CT or IGNORED.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    series_description_regex: str
    role: str

    @field_validator("series_description_regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(
                f"series_description_regex {value!r} is not a valid regex: {exc}"
            ) from exc
        return value

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        return _parse_role(value).value

    @property
    def series_role(self) -> SeriesRole:
        """The role as a :class:`SeriesRole`."""
        return _parse_role(self.role)


class ClassificationSettings(BaseModel):
    """The ``[classification]`` section: override rules and the confidence floor.

    Attributes
    ----------
    rules
        ``[[classification.rules]]`` entries, tried in order before the built-in rules.
    min_confidence
        Series classified below this confidence are not selected for analysis.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[ClassificationRule] = Field(default_factory=list)
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeriesClassification:
    """The role given to one series, how sure we are (0-1), and why."""

    series_instance_uid: str
    role: SeriesRole
    confidence: float
    reasons: tuple[str, ...]
    tracer: PetTracer | None = None


@dataclass(frozen=True)
class SequenceSelection:
    """The series chosen for each role, and the choices that needed a tie-break.

    Attributes
    ----------
    chosen
        Role -> the selected series.
    classifications
        Every series' classification, in index order.
    ambiguities
        One full sentence per role that had several candidates, naming the rule that chose.
    """

    chosen: Mapping[SeriesRole, SeriesInfo]
    classifications: tuple[SeriesClassification, ...]
    ambiguities: tuple[str, ...] = field(default=())

    def series_for(self, role: SeriesRole) -> SeriesInfo | None:
        """Return the series chosen for ``role``, or ``None``."""
        return self.chosen.get(role)

    def classification_of(self, series_instance_uid: str) -> SeriesClassification:
        """Return the classification of one series.

        Raises
        ------
        KeyError
            If the series was not classified.
        """
        for c in self.classifications:
            if c.series_instance_uid == series_instance_uid:
                return c
        raise KeyError(series_instance_uid)


# --- name patterns ------------------------------------------------------------------------

_OWN_RESULT = re.compile(r"rgcds|research use only", re.I)
_LOCALIZER = re.compile(
    r"\b(locali[sz]er\w*|loc|scout|survey|topogram|tri ?pilot|pilot|aa ?head ?scout|"
    r"3 ?pl(ane)? loc\w*|plane loc|cal(ibration)?|asset cal|ref ?scan|sense ref\w*|"
    r"coil ?ref|smartbrain|auto ?align|aahscout)\b",
    re.I,
)
_DERIVED = re.compile(
    r"\b(mprs?|mpr ?\d+|mip|min ?ip|mips|reformat\w*|screen ?(save|shot)s?|screenshots?|"
    r"volume rendering|vr|3d render\w*|sub|subtraction|colou?r ?map|fa|fractional|tensor|"
    r"r?cbv|cbf|mtt|ttp|perf\w*|dsc|dce|asl|pcasl|spectro\w*|svs|csi|mrs|"
    r"pha(se)?( images)?|mag( images)?|moco\w*|tof|angio|mra|pd|localizer)\b",
    re.I,
)
_NON_AC_PET = re.compile(r"\b(nac|non ?ac|no ?ac|uncorr\w*|not corrected)\b", re.I)
_EADC = re.compile(r"\b(eadc|exp(onential)? ?adc)\b", re.I)
_ADC = re.compile(r"\b(d?adc\w*|apparent diffusion( coefficient)?)\b", re.I)
_DWI = re.compile(
    r"\b(diff\w*|ep2d diff\w*|dwi\w*|dw|trace\w*|b ?1000|resolve|isotropic|dti\w*)\b", re.I
)
_SWI = re.compile(r"\b(swi\w*|swan|susc\w*|veno ?bold|swip)\b", re.I)
_T2STAR = re.compile(
    r"t2 ?\*|t2 ?star|\b[se]?t2\w* (fl2d|fl3d|ffe|gre|fe|me2d)\b|\b(hemo\w*|haem\w*|medic|merge)\b",
    re.I,
)
_FLAIR = re.compile(r"flair|dark ?fluid|\btirm\b|\bda ?fl\b|\bfluid ?att\w*", re.I)
_T1 = re.compile(
    r"\b[se]?t1|mp ?rage|mp2rage|\b(f?spgr|bravo|tfe|vibe|flash|fl3d|fl2d|turbo ?flash|"
    r"lava|ir ?fspgr|ffe)\b",
    re.I,
)
_T2 = re.compile(r"\b[se]?t2", re.I)
_T2_WEAK = re.compile(r"\b(frfse|fse|tse|propeller|blade|haste|space|cube)\b", re.I)
_CONTRAST = re.compile(
    r"\+ ?c\b|\+ ?gd|\bc ?\+|\bgd\b|\bgad\w*|\bpost\w*|\bcontrast\b|\bce\b|\bkm\b|\bt1 ?c\b|"
    r"\bt1w? ?ce\b|\bpc\b|dotarem|gadovist|magnevist|prohance|multihance|clariscan|\benh\w*",
    re.I,
)
_PRE = re.compile(r"\b(pre\w*|nativ\w*|w ?o|without|non ?contrast|plain)\b", re.I)

_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_NON_IMAGE_MODALITIES = frozenset(
    {"SEG", "SR", "KO", "PR", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG", "OT", "DOC", "SC"}
)
_DERIVED_IMAGE_TYPES = frozenset(
    {
        "MPR",
        "MIP",
        "MNIP",
        "PROJECTION IMAGE",
        "REFORMATTED",
        "CSA MPR",
        "CSAPARALLEL",
        "CSA RESAMPLED",
        "SCREEN SAVE",
        "VOLUME_RENDER",
        "VOLUME RENDER",
        "SUBTRACTION",
        "SUB",
        "FA",
        "COLFA",
        "TENSOR",
    }
)

_TRACER_CODES: Mapping[str, PetTracer] = {
    "35321007": PetTracer.FDG,
    "C-B1031": PetTracer.FDG,
    "129510001": PetTracer.MET,
    "424708001": PetTracer.FET,
    "5811000122108": PetTracer.FDOPA,
}
_TRACER_NAMES: tuple[tuple[re.Pattern[str], PetTracer], ...] = (
    (re.compile(r"dopa", re.I), PetTracer.FDOPA),
    (re.compile(r"\bfet\b|fluoro ?ethyl|fluorethyl|ethyl ?tyrosin", re.I), PetTracer.FET),
    (re.compile(r"methionin|\bmet\b|\bmethio\b|c ?11 ?met", re.I), PetTracer.MET),
    (re.compile(r"\bfdg\b|deoxy ?glucose|fluorodeoxy", re.I), PetTracer.FDG),
)


def _normalise(text: str) -> str:
    """Lower-case and turn the separators vendors use (``_ - . /``) into spaces."""
    return re.sub(r"\s+", " ", re.sub(r"[_\-./,:;()\[\]]+", " ", text.lower())).strip()


def _names(series: SeriesInfo) -> str:
    parts = [series.series_description, series.protocol_name]
    return _normalise(" | ".join(p for p in parts if p))


# --- evidence -----------------------------------------------------------------------------


def _ignore_reason(series: SeriesInfo, names: str) -> str | None:
    if series.manufacturer.strip().lower() == "rgcds" or _OWN_RESULT.search(
        series.series_description
    ):
        return "the series is an rgcds result (Manufacturer or description says so)"
    if series.modality in _NON_IMAGE_MODALITIES:
        return f"Modality {series.modality} is not an image series rgcds analyses"
    if series.sop_class_uid.startswith(_SECONDARY_CAPTURE_PREFIX):
        return "the SOP Class is Secondary Capture"
    if "LOCALIZER" in series.image_type:
        return "Image Type says LOCALIZER"
    derived = _DERIVED_IMAGE_TYPES.intersection(series.image_type)
    if derived:
        return f"Image Type marks a derived image ({', '.join(sorted(derived))})"
    match = _LOCALIZER.search(names)
    if match:
        return f"the name {match.group(0)!r} marks a localizer or calibration scan"
    match = _DERIVED.search(names)
    if match and not _SWI.search(names):
        return f"the name {match.group(0)!r} marks a derived or unused series"
    if match and _SWI.search(names) and re.search(r"\b(mip|min ?ip|pha|mag)", names):
        return f"the name {match.group(0)!r} marks an SWI by-product, not the SWI image"
    return None


def _physics_role(series: SeriesInfo) -> tuple[SeriesRole | None, str]:
    """Infer the weighting from TR/TE/TI, b-value and Image Type (``None`` if unsure)."""
    if "ADC" in series.image_type:
        return SeriesRole.ADC, "Image Type contains ADC"
    if "TRACEW" in series.image_type or "DIFFUSION" in series.image_type:
        return SeriesRole.DWI, "Image Type marks a diffusion-weighted image"
    if series.diffusion_b_value is not None and series.diffusion_b_value > 0:
        return SeriesRole.DWI, f"Diffusion b-value {series.diffusion_b_value:g} s/mm2"
    tr, te, ti = series.repetition_time, series.echo_time, series.inversion_time
    if tr is None or te is None:
        return None, "TR/TE absent"
    ir = "IR" in series.scanning_sequence or (ti is not None and ti > 0)
    if ir and ti is not None:
        if ti >= 1500 and te >= 60:
            return SeriesRole.FLAIR, f"inversion recovery with TI {ti:g} ms and TE {te:g} ms"
        if ti <= 1300 and te <= 20:
            return SeriesRole.T1, f"inversion recovery with TI {ti:g} ms and TE {te:g} ms"
    if tr <= 900 and te <= 30:
        return SeriesRole.T1, f"short TR {tr:g} ms and short TE {te:g} ms"
    if tr >= 2000 and te >= 60 and not ir:
        return SeriesRole.T2, f"long TR {tr:g} ms and long TE {te:g} ms"
    return None, f"TR {tr:g} ms / TE {te:g} ms is not decisive"


def _name_role(names: str) -> tuple[SeriesRole | None, str]:
    """Infer the role from Series Description and Protocol Name (``None`` if no match)."""
    if _EADC.search(names):
        return SeriesRole.IGNORED, "the name marks an exponential ADC map"
    for pattern, role in (
        (_ADC, SeriesRole.ADC),
        (_DWI, SeriesRole.DWI),
        (_SWI, SeriesRole.SWI),
    ):
        match = pattern.search(names)
        if match:
            return role, f"the name contains {match.group(0)!r}"
    match = _T2STAR.search(names)
    if match:
        return SeriesRole.IGNORED, f"the name {match.group(0)!r} marks a T2* gradient echo"
    t1 = _T1.search(names)
    flair = _FLAIR.search(names)
    if flair and not (t1 and re.search(r"\b[se]?t1", names)):
        return SeriesRole.FLAIR, f"the name contains {flair.group(0)!r}"
    if t1:
        return SeriesRole.T1, f"the name contains {t1.group(0)!r}"
    match = _T2.search(names)
    if match:
        return SeriesRole.T2, f"the name contains {match.group(0)!r}"
    match = _T2_WEAK.search(names)
    if match:
        return SeriesRole.T2, f"the name contains {match.group(0)!r} (a T2 family sequence)"
    return None, "the name matches no known sequence"


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
        if info.code_value in _TRACER_CODES:
            return _TRACER_CODES[info.code_value]
        for text in (info.code_meaning, info.name):
            for pattern, tracer in _TRACER_NAMES:
                if text and pattern.search(_normalise(text)):
                    return tracer
    names = _names(series)
    for pattern, tracer in _TRACER_NAMES:
        if pattern.search(names):
            return tracer
    return PetTracer.UNKNOWN


def classify_series(
    series: SeriesInfo, overrides: Sequence[ClassificationRule] = ()
) -> SeriesClassification:
    """Classify one series.

    Parameters
    ----------
    series
        The series and its header evidence (from :func:`rgcds.study.index_study`).
    overrides
        Configured rules, tried in order before the built-in rules; the first whose regex
        matches the Series Description decides (confidence 1.0).

    Returns
    -------
    SeriesClassification
    """
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

    names = _names(series)
    reason = _ignore_reason(series, names)
    if reason is not None:
        return result(SeriesRole.IGNORED, 0.95, [reason])

    if series.modality == "PT":
        if _NON_AC_PET.search(names):
            return result(SeriesRole.IGNORED, 0.9, ["the PET series is not attenuation corrected"])
        tracer = identify_tracer(series)
        conf = 0.99 if tracer is not PetTracer.UNKNOWN else 0.9
        return result(SeriesRole.PET, conf, ["Modality is PT", f"tracer {tracer.value}"], tracer)
    if series.modality == "CT":
        return result(SeriesRole.CT, 0.99, ["Modality is CT"])
    if series.modality != "MR":
        modality = series.modality or "(none)"
        return result(SeriesRole.IGNORED, 0.9, [f"Modality {modality} is not MR, PT or CT"])

    name_role, name_reason = _name_role(names)
    phys_role, phys_reason = _physics_role(series)
    reasons: list[str] = []
    if name_role is not None and phys_role is not None:
        if _family(name_role) == _family(phys_role):
            role, conf = name_role, 0.95
            reasons += [name_reason, f"consistent with {phys_reason}"]
        else:
            role, conf = name_role, 0.7
            reasons += [
                name_reason,
                f"conflicts with the acquisition parameters ({phys_reason} suggests "
                f"{phys_role.value}); the name was trusted",
            ]
    elif name_role is not None:
        role, conf = name_role, 0.85
        reasons += [name_reason, f"no physics evidence ({phys_reason})"]
    elif phys_role is not None:
        role, conf = phys_role, 0.6
        reasons += [name_reason, f"from the acquisition parameters: {phys_reason}"]
    else:
        return result(SeriesRole.IGNORED, 0.3, [name_reason, phys_reason])

    if role is SeriesRole.T1:
        role, conf, contrast_reasons = _contrast(series, names, conf)
        reasons += contrast_reasons
    return result(role, conf, reasons)


def _family(role: SeriesRole) -> SeriesRole:
    return SeriesRole.T1 if role is SeriesRole.T1C else role


def _contrast(series: SeriesInfo, names: str, conf: float) -> tuple[SeriesRole, float, list[str]]:
    post = _CONTRAST.search(names)
    pre = _PRE.search(names)
    agent = series.contrast_bolus_agent.strip()
    if post:
        return SeriesRole.T1C, conf, [f"the name marks contrast ({post.group(0)!r})"]
    if pre and agent:
        return (
            SeriesRole.T1,
            conf - 0.15,
            [
                f"the name says pre-contrast ({pre.group(0)!r}) although Contrast/Bolus Agent "
                "is set; the name was trusted"
            ],
        )
    if agent:
        return SeriesRole.T1C, conf, ["Contrast/Bolus Agent (0018,0010) is set"]
    return SeriesRole.T1, conf, ["no contrast in name or Contrast/Bolus Agent"]


def classify_study(
    index: StudyIndex | Iterable[SeriesInfo], overrides: Sequence[ClassificationRule] = ()
) -> tuple[SeriesClassification, ...]:
    """Classify every series of an index (see :func:`classify_series`)."""
    series = index.series if isinstance(index, StudyIndex) else tuple(index)
    return tuple(classify_series(s, overrides) for s in series)


# --- selection ----------------------------------------------------------------------------

_VOLUME_ROLES = frozenset(SeriesRole) - {SeriesRole.IGNORED}
_MIN_FRAMES = 3


def _preference(series: SeriesInfo, c: SeriesClassification) -> tuple[float, ...]:
    thickness = series.slice_thickness if series.slice_thickness is not None else 99.0
    return (
        1.0 if c.confidence >= 0.8 else 0.0,
        1.0 if series.is_3d else 0.0,
        -round(thickness, 2),
        float(series.n_frames),
        float(_time_seconds(series.series_time or series.acquisition_time)),
        float(series.series_number or 0),
    )


def _time_seconds(tm: str) -> float:
    digits = tm.strip().split("T")[-1]
    try:
        hh, mm, ss = int(digits[0:2] or 0), int(digits[2:4] or 0), float(digits[4:] or 0)
    except ValueError:
        return 0.0
    return hh * 3600 + mm * 60 + ss


def select_sequences(
    index: StudyIndex,
    settings: ClassificationSettings | None = None,
    overrides: Sequence[ClassificationRule] | None = None,
) -> SequenceSelection:
    """Classify every series and choose one per role.

    Parameters
    ----------
    index
        The study index.
    settings
        The ``[classification]`` settings (rules, confidence floor); defaults apply if
        ``None``.
    overrides
        Extra rules tried before ``settings.rules``.

    Returns
    -------
    SequenceSelection
        Chosen series per role; roles with several candidates are decided by the documented
        preference (confidence band, 3D over 2D, thinner slices, more slices, later
        acquisition) and reported in ``ambiguities``.
    """
    settings = settings or ClassificationSettings()
    rules = [*(overrides or ()), *settings.rules]
    classifications = classify_study(index, rules)
    by_role: dict[SeriesRole, list[tuple[SeriesInfo, SeriesClassification]]] = {}
    for series, c in zip(index.series, classifications, strict=True):
        if c.role not in _VOLUME_ROLES or c.confidence < settings.min_confidence:
            continue
        if series.n_frames < _MIN_FRAMES:
            continue
        by_role.setdefault(c.role, []).append((series, c))
    chosen: dict[SeriesRole, SeriesInfo] = {}
    ambiguities: list[str] = []
    for role, candidates in by_role.items():
        ranked = sorted(candidates, key=lambda sc: _preference(*sc), reverse=True)
        chosen[role] = ranked[0][0]
        if len(ranked) > 1:
            others = ", ".join(f"{s.series_number} {s.series_description!r}" for s, _ in ranked[1:])
            best = ranked[0][0]
            ambiguities.append(
                f"{len(ranked)} series qualify as {role.value}; chose series "
                f"{best.series_number} {best.series_description!r} "
                f"({'3D' if best.is_3d else '2D'}, {best.slice_thickness} mm slices) over "
                f"{others} by the preference: confidence, 3D over 2D, thinner slices, more "
                "slices, later acquisition."
            )
    logger.info(
        "sequences selected",
        roles=sorted(r.value for r in chosen),
        n_ambiguities=len(ambiguities),
    )
    return SequenceSelection(chosen, classifications, tuple(ambiguities))


__all__ = [
    "ClassificationRule",
    "ClassificationSettings",
    "SequenceSelection",
    "SeriesClassification",
    "classify_series",
    "classify_study",
    "identify_tracer",
    "select_sequences",
]
