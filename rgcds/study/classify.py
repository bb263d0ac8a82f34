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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from rgcds.settings.classification import ClassificationRule, ClassificationSettings
from rgcds.study.enums import PetTracer, SeriesRole
from rgcds.study.index import SeriesInfo, StudyIndex

logger = structlog.get_logger(__name__)


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
    r"\b(mip|min ?ip|mips|reformat\w*|screen ?(save|shot)s?|screenshots?|"
    r"volume rendering|vr|3d render\w*|sub|subtraction|colou?r ?map|fa|fractional|tensor|"
    r"r?cbv|cbf|mtt|ttp|perf\w*|dsc|dce|asl|pcasl|spectro\w*|svs|csi|mrs|"
    r"pha(se)?( images)?|mag( images)?|moco\w*|tof|angio|mra|pd|localizer)\b",
    re.I,
)
#: "MPR": a multi-planar reformat, or (Image Type ORIGINAL) Siemens' short name for MPRAGE.
_MPR = re.compile(r"\bmprs?\b|\bmpr ?\d+\b", re.I)
_MPR_SOURCE = re.compile(r"mp ?rage|mp2rage|bravo|f?spgr|\btfe\b|space|\bspc\b|cube|vista", re.I)
#: Dual-echo proton density / T2 (older 1.5 T spin echo): the late echo is the T2.
_DUAL_ECHO = re.compile(
    r"\bpd ?\+? ?t2w?\b|\bt2w? ?\+? ?pd\b|\bdual ?echo\b|\bde ?tse\b|\bpd ?t2 ?tse\b", re.I
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
#: A gradient echo named without a weighting ("AX GRE"): the T2*-weighted GE protocol.
_GRE = re.compile(r"\b(gre|t2 ?gre|me ?gre)\b", re.I)
_FLAIR = re.compile(r"flair|dark ?fluid|\btirm\b|\bda ?fl\b|\bfluid ?att\w*", re.I)
_T1_TOKEN = re.compile(r"\b[se]?t1", re.I)
_T1 = re.compile(
    r"\b[se]?t1|mp ?rage|mp2rage|\bmpr\b|\b(f?spgr|bravo|tfe|vibe|flash|fl3d|fl2d|turbo ?flash|"
    r"lava|ir ?fspgr|ffe)\b",
    re.I,
)
_T2 = re.compile(r"\b[se]?t2", re.I)
#: Readout families that name no weighting: TR/TE decide (T2 when they do not).
_T2_WEAK = re.compile(
    r"\b(frfse|fse|tse|ssfse|propeller|blade|haste|fase|space|spc|cube|vista)\b", re.I
)
_CONTRAST = re.compile(
    r"\+ ?(c|gd|gad\w*|km|contrast|kontrast)\b|\bc ?\+|\bgd\b|\bgad\w*|"
    r"\bpost(?! ?op\b)(c|gd|gad\w*|km|contrast)?\b|\bpostcontrast\b|\bcontrast\b|\bce\b|"
    r"\bkm\b|\bt1 ?c\b|\bt1w? ?ce\b|\bpc\b|dotarem|gadovist|magnevist|prohance|multihance|"
    r"clariscan|omniscan|\benh\w*",
    re.I,
)
_PRE = re.compile(
    r"\b(pre(?! ?op\b) ?(c|gd|gad\w*|km|contrast|kontrast)?|precontrast|nativ\w*|"
    r"w ?o(( |-)?(c|contrast|gd|gad\w*))?|without( contrast)?|non ?contrast|no contrast|plain|"
    r"ohne( km)?|vor km|unenhanced|non ?enhanced)\b",
    re.I,
)
#: Exam-level "with and without contrast" (GE protocol names): says nothing about a series.
_WITH_AND_WITHOUT = re.compile(
    r"\bw ?(and |& )?w ?o\b|\bw ?o ?(and |& )?w\b|\bwwo\b|\bwith and without\b|"
    r"\bpre ?(and |& )?post\b",
    re.I,
)
#: Contrast/Bolus Agent values that mean "none given".
_NO_AGENT = frozenset({"", "none", "no", "nil", "n a", "na", "0", "keine", "kein", "ohne", "nein"})

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


def _name_sources(series: SeriesInfo) -> tuple[tuple[str, str], ...]:
    """(attribute, normalised text) for the Series Description, then the Protocol Name."""
    sources = (
        ("Series Description", _normalise(series.series_description)),
        ("Protocol Name", _normalise(series.protocol_name)),
    )
    return tuple((what, text) for what, text in sources if text)


# --- evidence -----------------------------------------------------------------------------


def _is_original(series: SeriesInfo) -> bool:
    return bool(series.image_type) and series.image_type[0] == "ORIGINAL"


def _name_ignore_reason(series: SeriesInfo, names: str) -> str | None:
    match = _LOCALIZER.search(names)
    if match:
        return f"the name {match.group(0)!r} marks a localizer or calibration scan"
    mpr = _MPR.search(names)
    if mpr and not (_is_original(series) and not _MPR_SOURCE.search(names)):
        return (
            f"the name {mpr.group(0)!r} marks a multi-planar reformat (Image Type is not "
            "ORIGINAL, or the name also names its source sequence)"
        )
    match = _DERIVED.search(names)
    if match and match.group(0) == "pd" and _DUAL_ECHO.search(names):
        match = None
    if match and not _SWI.search(names):
        return f"the name {match.group(0)!r} marks a derived or unused series"
    if match and _SWI.search(names) and re.search(r"\b(mip|min ?ip|pha|mag)", names):
        return f"the name {match.group(0)!r} marks an SWI by-product, not the SWI image"
    return None


def _ignore_reason(series: SeriesInfo) -> str | None:
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
    # The description first; the Protocol Name only when the description names no sequence
    # (GE's Protocol Name is the exam's, e.g. "BRAIN PERFUSION", for every series).
    for _what, text in _name_sources(series):
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
    if _EADC.search(names):
        return SeriesRole.IGNORED, "the name marks an exponential ADC map", False
    for pattern, role in (
        (_ADC, SeriesRole.ADC),
        (_DWI, SeriesRole.DWI),
        (_SWI, SeriesRole.SWI),
    ):
        match = pattern.search(names)
        if match:
            return role, f"the name contains {match.group(0)!r}", False
    match = _T2STAR.search(names)
    if match:
        return SeriesRole.IGNORED, f"the name {match.group(0)!r} marks a T2* gradient echo", False
    t1 = _T1.search(names)
    gre = _GRE.search(names)
    if gre and not t1:
        return SeriesRole.IGNORED, f"the name {gre.group(0)!r} marks a T2* gradient echo", False
    dual = _DUAL_ECHO.search(names)
    if dual:
        return (
            SeriesRole.T2,
            f"the name {dual.group(0)!r} marks a dual-echo PD/T2 (the late echo is the T2)",
            False,
        )
    flair = _FLAIR.search(names)
    if flair and not (t1 and _T1_TOKEN.search(names)):
        return SeriesRole.FLAIR, f"the name contains {flair.group(0)!r}", False
    if t1:
        return SeriesRole.T1, f"the name contains {t1.group(0)!r}", False
    match = _T2.search(names)
    if match:
        return SeriesRole.T2, f"the name contains {match.group(0)!r}", False
    match = _T2_WEAK.search(names)
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
    for what, text in _name_sources(series):
        role, reason, weak = _name_evidence(text)
        if role is not None:
            return role, f"{what}: {reason}", weak
        fallback = (None, f"{what}: {reason}", False)
    return fallback


def is_dual_echo(series: SeriesInfo) -> bool:
    """Whether the series is named as a dual-echo PD/T2 (convert its late echo only)."""
    return any(_DUAL_ECHO.search(text) for _what, text in _name_sources(series))


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

    names = _names(series)
    reason = _ignore_reason(series)
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
    sources = _name_sources(series)
    text = sources[0][1] if sources else ""
    return _WITH_AND_WITHOUT.sub(" ", text)


def _agent(series: SeriesInfo) -> str:
    """The Contrast/Bolus Agent, or ``""`` when absent or a value meaning none."""
    agent = series.contrast_bolus_agent.strip()
    return "" if _normalise(agent) in _NO_AGENT else agent


def _contrast_marker(series: SeriesInfo) -> tuple[str | None, str]:
    """``("pre" | "post", matched text)`` from the name, or ``(None, "")``."""
    text = _contrast_text(series)
    pre = _PRE.search(text)
    if pre:
        return "pre", pre.group(0)
    post = _CONTRAST.search(text)
    if post:
        return "post", post.group(0)
    return None, ""


def _contrast(series: SeriesInfo, conf: float) -> tuple[SeriesRole, float, list[str]]:
    marker, text = _contrast_marker(series)
    agent = _agent(series)
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


# --- study-level contrast inference -------------------------------------------------------


def _acquired(series: SeriesInfo) -> tuple[float, float] | None:
    """A sortable acquisition order (series time, then number), or ``None`` if unknown."""
    tm = series.series_time or series.acquisition_time
    if not tm and series.series_number is None:
        return None
    return (_time_seconds(tm) if tm else -1.0, float(series.series_number or 0))


def _before(a: SeriesInfo, b: SeriesInfo) -> bool:
    """Whether ``a`` was acquired before ``b`` (times if both have them, else numbers)."""
    ta, tb = a.series_time or a.acquisition_time, b.series_time or b.acquisition_time
    if ta and tb and _time_seconds(ta) != _time_seconds(tb):
        return _time_seconds(ta) < _time_seconds(tb)
    if a.series_number is not None and b.series_number is not None:
        return a.series_number < b.series_number
    return False


def _protocol_key(series: SeriesInfo) -> str:
    return _WITH_AND_WITHOUT.sub(" ", _normalise(series.series_description)).strip() or (
        f"{series.scanning_sequence} {series.repetition_time} {series.echo_time} "
        f"{series.inversion_time}"
    )


def _label(series: SeriesInfo) -> str:
    return f"series {series.series_number} {series.series_description!r}"


def _post_contrast_from_order(
    series: Sequence[SeriesInfo], classifications: Sequence[SeriesClassification]
) -> tuple[list[SeriesClassification], list[str]]:
    """Re-label unmarked T1 series that the acquisition order shows to be post-contrast."""
    out = list(classifications)
    notes: list[str] = []
    unmarked = [
        k
        for k, c in enumerate(out)
        if c.role is SeriesRole.T1 and NO_CONTRAST_EVIDENCE in c.reasons
    ]
    # Contrast-enhanced: a T1c, or any MR series given an agent (a DSC perfusion is the
    # injection itself).
    enhanced = [
        k
        for k, c in enumerate(out)
        if c.role is SeriesRole.T1C or (series[k].modality == "MR" and _agent(series[k]))
    ]

    def relabel(k: int, why: str, penalty: float) -> None:
        c = out[k]
        out[k] = SeriesClassification(
            c.series_instance_uid,
            SeriesRole.T1C,
            round(max(c.confidence - penalty, 0.0), 2),
            (*c.reasons, why),
            c.tracer,
        )

    if enhanced:
        first = min((series[k] for k in enhanced), key=lambda s: _acquired(s) or (1e9, 1e9))
        for k in unmarked:
            if _before(first, series[k]):
                why = (
                    f"acquired after the contrast-enhanced {_label(first)}, so it is "
                    "post-contrast (the agent stays in the tissue)"
                )
                relabel(k, why, 0.0)
                notes.append(
                    f"{_label(series[k])} has no contrast marker but was acquired after the "
                    f"contrast-enhanced {_label(first)}; it was taken as post-contrast (T1c)."
                )
        if any(o.role is SeriesRole.T1C for o in out):
            return out, notes
        unmarked = [k for k in unmarked if out[k].role is SeriesRole.T1]

    groups: dict[str, list[int]] = {}
    for k in unmarked:
        groups.setdefault(_protocol_key(series[k]), []).append(k)
    for members in groups.values():
        if len(members) < 2:
            continue
        ordered = sorted(members, key=lambda k: _acquired(series[k]) or (1e9, 1e9))
        first_series = series[ordered[0]]
        for k in ordered[1:]:
            between = any(
                _before(first_series, other) and _before(other, series[k])
                for other in series
                if other is not first_series and other is not series[k]
            )
            # An immediate repeat is a motion repeat; the contrast goes in between series.
            if not _before(first_series, series[k]) or not between:
                continue
            why = (
                f"a later repeat of {_label(first_series)} with no contrast marker in a "
                "study without any contrast-enhanced T1: taken as the post-contrast acquisition"
            )
            relabel(k, why, 0.1)
            notes.append(
                f"The study has no T1 series marked as contrast-enhanced; {_label(series[k])} "
                f"repeats {_label(first_series)} later and was taken as the post-contrast T1 "
                "(T1c). Mark post-contrast series (e.g. '+C') or add a "
                "[[classification.rules]] entry if this is wrong."
            )
    return out, notes


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
        The ``[classification]`` settings (rules, confidence floor, physics thresholds,
        acquisition-order contrast inference); defaults apply if ``None``.
    overrides
        Extra rules tried before ``settings.rules``.

    Returns
    -------
    SequenceSelection
        Chosen series per role; roles with several candidates are decided by the documented
        preference (confidence band, 3D over 2D, thinner slices, more slices, later
        acquisition) and reported in ``ambiguities``, as are T1 series taken as
        post-contrast from the acquisition order.
    """
    settings = settings or ClassificationSettings()
    rules = [*(overrides or ()), *settings.rules]
    classifications = list(classify_study(index, rules, settings))
    ambiguities: list[str] = []
    if settings.post_contrast_from_order:
        classifications, order_notes = _post_contrast_from_order(index.series, classifications)
        ambiguities += order_notes
    by_role: dict[SeriesRole, list[tuple[SeriesInfo, SeriesClassification]]] = {}
    for series, c in zip(index.series, classifications, strict=True):
        if c.role not in _VOLUME_ROLES or c.confidence < settings.min_confidence:
            continue
        if series.n_frames < _MIN_FRAMES:
            continue
        by_role.setdefault(c.role, []).append((series, c))
    chosen: dict[SeriesRole, SeriesInfo] = {}
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
    return SequenceSelection(chosen, tuple(classifications), tuple(ambiguities))


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
    "select_sequences",
]
