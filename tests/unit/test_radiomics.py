"""Radiomics: tidy table shape and columns, IBSI names, parameter files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from rgcds.analysis.radiomics import (
    FEATURE_COLUMNS,
    IBSI_NAMES,
    RadiomicsError,
    RadiomicsParams,
    extract_radiomics,
    ibsi_name,
    load_params,
    to_wide,
    write_features,
)

pytestmark = pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")

SMALL = RadiomicsParams(
    name="test",
    pyradiomics={
        "imageType": {"Original": {}},
        "featureClass": {
            "firstorder": ["Mean", "Median", "Entropy"],
            "shape": ["VoxelVolume"],
            "glcm": ["Contrast"],
        },
        "setting": {"normalize": True, "normalizeScale": 100, "binWidth": 5, "label": 1},
    },
    sequence_overrides={"PET": {"normalize": False, "binWidth": 0.25}},
)


@pytest.fixture(scope="module")
def study() -> tuple[dict[str, sitk.Image], sitk.Image]:
    rng = np.random.default_rng(1)
    z, y, x = np.indices((16, 24, 24))
    r = np.sqrt((z - 8) ** 2 + (y - 12) ** 2 + (x - 12) ** 2)
    labels = np.zeros(r.shape, np.uint8)
    labels[r < 8] = 2
    labels[r < 5] = 3
    labels[r < 2] = 1
    t1c = (rng.normal(100, 10, r.shape) + 30 * (labels == 3)).astype(np.float32)
    img = sitk.GetImageFromArray(t1c)
    img.SetSpacing((1.0, 1.0, 2.0))
    lab = sitk.GetImageFromArray(labels)
    lab.CopyInformation(img)
    return {"T1c": img}, lab


def test_table_columns_and_shape(study) -> None:
    images, labels = study
    table = extract_radiomics(
        images, labels, study_uid="1.2.3", regions=["ET"], params=SMALL, max_workers=1
    )
    assert tuple(table.columns) == FEATURE_COLUMNS
    assert len(table) == 5  # 3 first order + 1 GLCM on T1c, 1 shape on the mask
    assert set(table["region"]) == {"ET"}
    assert set(table["sequence"]) == {"T1c", "mask"}
    assert (table["study_uid"] == "1.2.3").all()
    mean = table[table["feature"] == "original_firstorder_Mean"]
    assert mean["ibsi_name"].iloc[0] == "Mean intensity (Q4LE)"
    assert np.isfinite(table["value"]).all()


def test_empty_region_is_skipped_and_parallel_matches_serial(study) -> None:
    images, labels = study
    serial = extract_radiomics(
        images, labels, study_uid="x", regions=["ET", "TC"], params=SMALL, max_workers=1
    )
    parallel = extract_radiomics(
        images, labels, study_uid="x", regions=["ET", "TC"], params=SMALL, max_workers=2
    )
    pd.testing.assert_frame_equal(serial, parallel)
    empty = sitk.Image(labels)
    empty = empty * 0
    assert extract_radiomics(images, empty, study_uid="x", regions=["ET"], params=SMALL).empty


def test_wide_table_and_csv(study, tmp_path) -> None:
    images, labels = study
    table = extract_radiomics(
        images, labels, study_uid="s1", regions=["ET"], params=SMALL, max_workers=1
    )
    wide = to_wide(table)
    assert wide.shape == (1, 5)
    assert "ET_T1c_firstorder_Mean" in wide.columns and "ET_mask_shape_VoxelVolume" in wide.columns
    path = write_features(table, tmp_path / "features.parquet")
    assert path.suffix in {".csv", ".parquet"}
    assert path.is_file()


def test_ibsi_mapping_covers_common_features() -> None:
    assert IBSI_NAMES["firstorder_Mean"] == ("Mean intensity", "Q4LE")
    assert ibsi_name("original_glcm_JointEntropy") == "Joint entropy (TU9B)"
    assert ibsi_name("original_firstorder_TotalEnergy") == ""
    assert len(IBSI_NAMES) >= 90
    codes = [code for _, code in IBSI_NAMES.values()]
    assert all(len(code) == 4 for code in codes)


def test_packaged_parameter_files() -> None:
    mri = load_params()
    assert set(mri.feature_classes) == {
        "firstorder",
        "shape",
        "glcm",
        "glrlm",
        "glszm",
        "gldm",
        "ngtdm",
    }
    setting = mri.pyradiomics["setting"]
    assert setting["normalize"] is True and setting["binWidth"] == 5
    assert setting["resampledPixelSpacing"] == [1.0, 1.0, 1.0]
    assert mri.for_sequence("PET", with_shape=False)["setting"]["normalize"] is False
    assert "shape" not in mri.for_sequence("T1c", with_shape=False)["featureClass"]
    fast = load_params("radiomics_fast.yaml")
    assert fast.pyradiomics["setting"]["resampledPixelSpacing"] == [2.0, 2.0, 2.0]
    with pytest.raises(RadiomicsError, match="does not exist"):
        load_params("no-such-params.yaml")
