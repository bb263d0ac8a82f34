"""Synthetic glioblastoma studies with ground truth, for tests, training cohorts and the demo.

Post-operative variant (resection cavity, residual tumour, MR study + separate [11C]MET
PET/CT study, RT Structure Set with the CTV, time-to-recurrence and survival from a known
hazard model): :func:`simulate_postop` and :func:`write_postop_study`
(:mod:`rgcds.phantom.postop`).

``rgcds.phantom`` builds a patient on the MNI ICBM152 2009a brain template that ships inside
the nilearn wheel (no downloads), inserts a glioblastoma with BraTS sub-regions, and either
returns template-space volumes (:func:`simulate_subject`) or writes one DICOM study with
T1 MPRAGE (sagittal 3D), T2 TSE (axial 2D, 5 mm), FLAIR (axial 2D, 4 mm), T1 MPRAGE after
gadobutrol (axial 3D) and [11C]methionine PET, plus ground truth (:func:`write_study`).
Everything is deterministic per seed: pixel data, UIDs and clinical variables.

Tumour model
------------
Location: a white-matter point in one hemisphere and lobe (frontal, temporal, parietal,
occipital). Core (necrosis + enhancing): the voxels with the smallest values of an irregular
radial field ``r / R + a * noise`` (smooth Gaussian noise, amplitude ``a`` 0.12-0.35), so the
volume is exactly the target; it never enters CSF. Necrosis: the centre of the core, leaving an
irregular enhancing rim of at least 2-4.5 mm. Oedema: a fast-marching front from the core,
fast in white matter, slow in grey matter and stopped by CSF, so it follows white-matter
tracts. Mass effect: a smooth radial displacement (1.5-5 mm peak) pushes the surrounding tissue
away. BraTS labels: 1 necrotic core, 2 oedema, 3 enhancing tumour.

Imaging appearance (as in real GBM): ring enhancement on T1c around dark necrosis; the tumour is
hypo-/iso-intense on T1 without contrast; oedema bright on T2 and FLAIR (CSF bright on T2,
dark on FLAIR); MET uptake in the enhancing tumour and, less, in the adjacent non-enhancing
tumour (tumour-to-background ratio about 2-3). MR images carry a smooth multiplicative bias
field and Rician noise; thick 2D slices average the signal across the slice thickness.

Synthetic markers and their imaging associations (real in the data, noisy, see
:mod:`rgcds.phantom.clinical` for the numbers)
--------------------------------------------------------------------------------------------
- IDH-mutant (15 %): younger (about 40 vs 62 years), frontal lobe more often, less necrosis,
  weaker enhancement and lower MET uptake, more often MGMT methylated, rarely EGFR amplified.
- MGMT promoter methylated: longer survival (log hazard ratio -0.55).
- EGFR amplified: more oedema (oedema fraction of the whole tumour +0.12).
- Overall survival: shorter with age (+0.035 log hazard per year) and with larger
  necrotic + enhancing volume (+0.35 per log-unit of core volume); longer for IDH-mutant; some
  patients are censored.

Geometry and conventions (for other modules)
--------------------------------------------
Template space is LPS with identity direction (the nilearn RAS NIfTI flipped), 1 mm, and is
what :func:`template_t1` and :func:`template_brain_mask` return. The simulation grid is the
template box padded by 20 mm (room for the synthetic skull and scalp) at 2 mm (``small``) or
1 mm (``full``). Series are planned in scanner LPS coordinates with a random head pose per
series; all MR series share one FrameOfReferenceUID (one session, small motion between series),
the PET has its own. ``truth/labels_t1c_native.nii.gz`` has exactly the geometry SimpleITK's
ImageSeriesReader gives for the T1c series.
"""

from rgcds.phantom.clinical import ClinicalVariables, TumourParameters
from rgcds.phantom.montage import write_montage
from rgcds.phantom.postop import (
    LABEL_CAVITY,
    LABEL_OEDEMA,
    LABEL_RESIDUAL_ENHANCING,
    PostopClinical,
    PostopSubject,
    simulate_postop,
)
from rgcds.phantom.postop_study import PostopStudies, write_postop_study
from rgcds.phantom.simulate import PhantomError, SubjectVolumes, simulate_subject
from rgcds.phantom.study import PhantomSeries, PhantomStudy, write_study
from rgcds.templates import template_brain_mask, template_t1

__all__ = [
    "LABEL_CAVITY",
    "LABEL_OEDEMA",
    "LABEL_RESIDUAL_ENHANCING",
    "ClinicalVariables",
    "PhantomError",
    "PhantomSeries",
    "PhantomStudy",
    "PostopClinical",
    "PostopStudies",
    "PostopSubject",
    "SubjectVolumes",
    "TumourParameters",
    "simulate_postop",
    "simulate_subject",
    "template_brain_mask",
    "template_t1",
    "write_montage",
    "write_postop_study",
    "write_study",
]
