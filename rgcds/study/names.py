"""Series-name patterns: how Siemens, GE, Philips and Canon spell each sequence, what marks
a series to ignore, a contrast agent or its absence, and a PET tracer (see
:mod:`rgcds.study.classify` for the precedence)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from rgcds.study.enums import PetTracer
from rgcds.study.index import SeriesInfo

OWN_RESULT = re.compile(r"rgcds|research use only", re.I)
LOCALIZER = re.compile(
    r"\b(locali[sz]er\w*|loc|scout|survey|topogram|tri ?pilot|pilot|aa ?head ?scout|"
    r"3 ?pl(ane)? loc\w*|plane loc|cal(ibration)?|asset cal|ref ?scan|sense ref\w*|"
    r"coil ?ref|smartbrain|auto ?align|aahscout)\b",
    re.I,
)
DERIVED = re.compile(
    r"\b(mip|min ?ip|mips|reformat\w*|screen ?(save|shot)s?|screenshots?|"
    r"volume rendering|vr|3d render\w*|sub|subtraction|colou?r ?map|fa|fractional|tensor|"
    r"r?cbv|cbf|mtt|ttp|perf\w*|dsc|dce|asl|pcasl|spectro\w*|svs|csi|mrs|"
    r"pha(se)?( images)?|mag( images)?|moco\w*|tof|angio|mra|pd|localizer)\b",
    re.I,
)
#: "MPR": a multi-planar reformat, or (Image Type ORIGINAL) Siemens' short name for MPRAGE.
MPR = re.compile(r"\bmprs?\b|\bmpr ?\d+\b", re.I)
MPR_SOURCE = re.compile(r"mp ?rage|mp2rage|bravo|f?spgr|\btfe\b|space|\bspc\b|cube|vista", re.I)
#: Dual-echo proton density / T2 (older 1.5 T spin echo): the late echo is the T2.
DUAL_ECHO = re.compile(
    r"\bpd ?\+? ?t2w?\b|\bt2w? ?\+? ?pd\b|\bdual ?echo\b|\bde ?tse\b|\bpd ?t2 ?tse\b", re.I
)
NON_AC_PET = re.compile(r"\b(nac|non ?ac|no ?ac|uncorr\w*|not corrected)\b", re.I)
EADC = re.compile(r"\b(eadc|exp(onential)? ?adc)\b", re.I)
ADC = re.compile(r"\b(d?adc\w*|apparent diffusion( coefficient)?)\b", re.I)
DWI = re.compile(
    r"\b(diff\w*|ep2d diff\w*|dwi\w*|dw|trace\w*|b ?1000|resolve|isotropic|dti\w*)\b", re.I
)
SWI = re.compile(r"\b(swi\w*|swan|susc\w*|veno ?bold|swip)\b", re.I)
T2STAR = re.compile(
    r"t2 ?\*|t2 ?star|\b[se]?t2\w* (fl2d|fl3d|ffe|gre|fe|me2d)\b|\b(hemo\w*|haem\w*|medic|merge)\b",
    re.I,
)
#: A gradient echo named without a weighting ("AX GRE"): the T2*-weighted GE protocol.
GRE = re.compile(r"\b(gre|t2 ?gre|me ?gre)\b", re.I)
FLAIR = re.compile(r"flair|dark ?fluid|\btirm\b|\bda ?fl\b|\bfluid ?att\w*", re.I)
T1_TOKEN = re.compile(r"\b[se]?t1", re.I)
T1 = re.compile(
    r"\b[se]?t1|mp ?rage|mp2rage|\bmpr\b|\b(f?spgr|bravo|tfe|vibe|flash|fl3d|fl2d|turbo ?flash|"
    r"lava|ir ?fspgr|ffe)\b",
    re.I,
)
T2 = re.compile(r"\b[se]?t2", re.I)
#: Readout families that name no weighting: TR/TE decide (T2 when they do not).
T2_WEAK = re.compile(
    r"\b(frfse|fse|tse|ssfse|propeller|blade|haste|fase|space|spc|cube|vista)\b", re.I
)
CONTRAST = re.compile(
    r"\+ ?(c|gd|gad\w*|km|contrast|kontrast)\b|\bc ?\+|\bgd\b|\bgad\w*|"
    r"\bpost(?! ?op\b)(c|gd|gad\w*|km|contrast)?\b|\bpostcontrast\b|\bcontrast\b|\bce\b|"
    r"\bkm\b|\bt1 ?c\b|\bt1w? ?ce\b|\bpc\b|dotarem|gadovist|magnevist|prohance|multihance|"
    r"clariscan|omniscan|\benh\w*",
    re.I,
)
PRE = re.compile(
    r"\b(pre(?! ?op\b) ?(c|gd|gad\w*|km|contrast|kontrast)?|precontrast|nativ\w*|"
    r"w ?o(( |-)?(c|contrast|gd|gad\w*))?|without( contrast)?|non ?contrast|no contrast|plain|"
    r"ohne( km)?|vor km|unenhanced|non ?enhanced)\b",
    re.I,
)
#: Exam-level "with and without contrast" (GE protocol names): says nothing about a series.
WITH_AND_WITHOUT = re.compile(
    r"\bw ?(and |& )?w ?o\b|\bw ?o ?(and |& )?w\b|\bwwo\b|\bwith and without\b|"
    r"\bpre ?(and |& )?post\b",
    re.I,
)
#: Contrast/Bolus Agent values that mean "none given".
NO_AGENT = frozenset({"", "none", "no", "nil", "n a", "na", "0", "keine", "kein", "ohne", "nein"})

SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
NON_IMAGE_MODALITIES = frozenset(
    {"SEG", "SR", "KO", "PR", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG", "OT", "DOC", "SC"}
)
DERIVED_IMAGE_TYPES = frozenset(
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

TRACER_CODES: Mapping[str, PetTracer] = {
    "35321007": PetTracer.FDG,
    "C-B1031": PetTracer.FDG,
    "129510001": PetTracer.MET,
    "424708001": PetTracer.FET,
    "5811000122108": PetTracer.FDOPA,
}
TRACER_NAMES: tuple[tuple[re.Pattern[str], PetTracer], ...] = (
    (re.compile(r"dopa", re.I), PetTracer.FDOPA),
    (re.compile(r"\bfet\b|fluoro ?ethyl|fluorethyl|ethyl ?tyrosin", re.I), PetTracer.FET),
    (re.compile(r"methionin|\bmet\b|\bmethio\b|c ?11 ?met", re.I), PetTracer.MET),
    (re.compile(r"\bfdg\b|deoxy ?glucose|fluorodeoxy", re.I), PetTracer.FDG),
)


def normalise(text: str) -> str:
    """Lower-case and turn the separators vendors use (``_ - . /``) into spaces."""
    return re.sub(r"\s+", " ", re.sub(r"[_\-./,:;()\[\]]+", " ", text.lower())).strip()


def series_names(series: SeriesInfo) -> str:
    parts = [series.series_description, series.protocol_name]
    return normalise(" | ".join(p for p in parts if p))


def name_sources(series: SeriesInfo) -> tuple[tuple[str, str], ...]:
    """(attribute, normalised text) for the Series Description, then the Protocol Name."""
    sources = (
        ("Series Description", normalise(series.series_description)),
        ("Protocol Name", normalise(series.protocol_name)),
    )
    return tuple((what, text) for what, text in sources if text)
