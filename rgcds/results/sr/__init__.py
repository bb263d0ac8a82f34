"""Enhanced SR documents with a TID 1500 Measurement Report of the analysis (and the RANO
key measurements alone).

Content (one measurement group each, in this order):

* the analysis status (complete / not analysed with the reason), the series used per role,
  the intended use ("research use only") and notes;
* per tumour region: volume and the region's radiomic features; the three SEG regions are
  volumetric ROI groups (TID 1411) that reference their SEG segment and share its tracking
  UID; the composites (tumour core, whole tumour) are TID 1501 groups; the finding site
  (lobes, with the hemisphere as laterality) and "crosses midline" are on every region group;
* per RANO lesion: long axis, short axis and their product, and a group with the sum;
* per marker prediction: probability of the positive class and the predicted class, with the
  model's identification, version and validation metric as algorithm parameters;
* the survival prediction: relative risk, median overall survival, survival probabilities
  at 6, 12 and 24 months and the risk group, with model provenance;
* when the report has a PET analysis (``content.pet``): a PET group (tracer, units, TBRmax,
  TBRmean, SUVmax/mean/peak, background uptake and method, BTV threshold and volume, CTV
  source, registration quality or the PET-only reason), a volumetric group (TID 1411) that
  references the PET SEG's BTV segment when there is one, a "Residual tumour" group
  (Present/Absent with the combined and per-model probabilities and the models), a CTV group
  referencing the CTV segment, and one group per prognosis item (risk score, risk group,
  median, covariates, whether MGMT was used, model provenance).

The RANO key-measurement SR (:func:`build_rano_report`, its own series) repeats the RANO
lesion groups that have coordinates, alone: OHIF v3 draws an SR only when every group has
image coordinates.

Evidence: the MR SEG and T1c series, the PET SEG(s) and the PET series. Instances of the
SR's own study go into the Current Requested Procedure Evidence Sequence; those of the other
(PET) study, acquired for another requested procedure, into the Pertinent Other Evidence
Sequence (PS3.3 C.17.2.3), as highdicom does.
"""

from __future__ import annotations

from rgcds.results.sr.document import build_rano_report, build_report, predecessor_sequence
from rgcds.results.sr.items import SURVIVAL_TIMEPOINTS_DAYS, decision_rule, report_key
from rgcds.results.sr.pet import residual_consistency
from rgcds.results.sr.regions import referenced_segment

__all__ = [
    "SURVIVAL_TIMEPOINTS_DAYS",
    "build_rano_report",
    "build_report",
    "decision_rule",
    "predecessor_sequence",
    "referenced_segment",
    "report_key",
    "residual_consistency",
]
