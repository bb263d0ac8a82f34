"""Predictions: inputs are declared, not assumed (issue 22).

Each card states the series, regions and clinical variables its model needs; ``predict_all``
runs the models a study can feed, skips the others with a note for the radiologist, reports
the most specific variant of a marker, and never raises for a missing series.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import yaml

from rgcds.analysis.cards import (
    ModelInputs,
    discover_cards,
    inputs_from_features,
    parse_feature_name,
    read_card,
)
from rgcds.analysis.predict import ClinicalInputs, StudyInputs, predict_all, unmet_inputs
from rgcds.analysis.validation import TrainingDataError, parse_sequences, select_sequences
from rgcds.inference.errors import ModelCardError

ROOT = Path(__file__).resolve().parents[2]
MR = ("T1", "T1c", "T2", "FLAIR")


def _pipeline(name: str) -> ModuleType:
    path = ROOT / "pipelines" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_rgcds_test_inputs_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _columns() -> list[str]:
    cols = []
    for region in ("TC", "ET"):
        for seq in (*MR, "PET"):
            cols += [f"{region}_{seq}_firstorder_F{i}" for i in range(2)]
        cols.append(f"{region}_mask_shape_Volume")
    return cols


def _table(n: int = 48, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = _columns()
    table = pd.DataFrame(
        rng.normal(size=(n, len(cols))),
        columns=cols,
        index=pd.Index([f"case-{i}" for i in range(n)], name="case_id"),
    )
    table["age_years"] = rng.normal(60, 10, n).round()
    table["sex_male"] = rng.integers(0, 2, n)
    signal = table["TC_T1c_firstorder_F0"] + table["TC_PET_firstorder_F0"]
    table["mgmt_methylated"] = (signal + rng.normal(scale=0.7, size=n) > 0).astype(int)
    death = rng.exponential(14 * np.exp(-0.03 * (table["age_years"] - 60)))
    censor = rng.uniform(6, 40, n)
    table["os_months"] = np.minimum(death, censor).round(2)
    table["event"] = (death <= censor).astype(int)
    return table


def _train(
    root: Path, model_id: str, sequences: tuple[str, ...] | None, table: pd.DataFrame
) -> Path:
    train = _pipeline("train_radiogenomics")
    out = root / model_id
    train.train_classifier(
        table,
        target="mgmt_methylated",
        out_dir=out,
        model_id=model_id,
        version="0.2.0",
        outer_folds=3,
        inner_folds=2,
        k_grid=(3,),
        c_grid=(1.0,),
        n_bootstrap=50,
        synthetic=True,
        sequences=sequences,
    )
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MR-only and an MR + PET MGMT model, and a clinical-only Cox model."""
    root = tmp_path_factory.mktemp("models")
    table = _table()
    _train(root, "mgmt-test", MR, table)
    _train(root, "mgmt-pet-test", (*MR, "PET"), table)
    _pipeline("train_survival").train_cox(
        table,
        out_dir=root / "survival-test",
        model_id="survival-test",
        outer_folds=3,
        inner_folds=2,
        k_grid=(0,),
        penalizer_grid=(0.1,),
        n_bootstrap=50,
        synthetic=True,
        sequences=MR,
    )
    return root


def _study(with_pet: bool, drop_region: str | None = None) -> dict[str, float]:
    features = {c: 0.2 for c in _columns() if with_pet or "_PET_" not in c}
    if drop_region is not None:
        features = {k: v for k, v in features.items() if not k.startswith(f"{drop_region}_")}
    return features


CLINICAL = ClinicalInputs(age_years=61, sex="F")


def test_feature_names_parse_into_region_sequence_feature() -> None:
    assert parse_feature_name("ED_PET_glcm_Contrast") == ("ED", "PET", "glcm_Contrast")
    assert parse_feature_name("ET_mask_shape_Sphericity") == ("ET", "mask", "shape_Sphericity")
    assert parse_feature_name("age_years") is None
    assert parse_feature_name("tbr_max") is None
    inputs = inputs_from_features(
        ("age_years", "TC_T1c_firstorder_Mean", "ED_FLAIR_glcm_Contrast", "ET_mask_shape_X")
    )
    assert inputs == ModelInputs(
        sequences=("T1c", "FLAIR"), regions=("ET", "ED", "TC"), clinical=("age_years",)
    )
    assert inputs.describe() == "T1c, FLAIR; age"


def test_training_writes_the_requires_block(models: Path) -> None:
    mr = read_card(models / "mgmt-test")
    pet = read_card(models / "mgmt-pet-test")
    assert mr.requires is not None and mr.requires.declared
    assert mr.inputs.sequences == MR and pet.inputs.sequences == (*MR, "PET")
    assert mr.inputs.clinical == ("age_years", "sex_male")
    assert mr.inputs.regions == ("ET", "TC")
    assert not any("_PET_" in f for f in mr.features)
    assert any("_mask_shape_" in f for f in mr.features)
    survival = read_card(models / "survival-test")
    assert survival.inputs.sequences == () and survival.inputs.clinical == ("age_years", "sex_male")


def test_old_card_without_requires_derives_its_inputs(models: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mgmt-pet-test"
    shutil.copytree(models / "mgmt-pet-test", folder)
    card = yaml.safe_load((folder / "model.yaml").read_text())
    del card["requires"]
    (folder / "model.yaml").write_text(yaml.safe_dump(card))
    old = read_card(folder)
    assert old.requires is None and not old.inputs.declared
    assert old.inputs.sequences == (*MR, "PET")
    assert old.inputs.clinical == ("age_years", "sex_male")


def test_declared_requires_must_cover_the_features(models: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mgmt-pet-test"
    shutil.copytree(models / "mgmt-pet-test", folder)
    card = yaml.safe_load((folder / "model.yaml").read_text())
    card["requires"]["sequences"] = list(MR)
    (folder / "model.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(ModelCardError, match="PET"):
        read_card(folder)
    card["requires"]["sequences"] = ["T1", "DWI"]
    (folder / "model.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(ModelCardError, match="DWI"):
        read_card(folder)


def test_mr_only_study_runs_the_mr_variant_and_notes_the_pet_one(models: Path) -> None:
    result = predict_all(models, _study(with_pet=False), CLINICAL)
    assert [m.provenance.model_id for m in result.markers] == ["mgmt-test"]
    assert len(result.survival) == 1
    assert "MGMT model mgmt-pet-test not applied: it needs a PET series." in result.notes
    assert len(result.notes) == 1


def test_pet_study_reports_the_pet_variant_once(models: Path) -> None:
    result = predict_all(models, _study(with_pet=True), CLINICAL)
    assert [m.provenance.model_id for m in result.markers] == ["mgmt-pet-test"]
    assert len(result.notes) == 1
    note = result.notes[0]
    assert note.startswith("MGMT: reported from the MR + PET model mgmt-pet-test 0.2.0")
    assert "the MR-only model mgmt-test could also run and was not reported" in note


def test_unmet_clinical_input_skips_the_model_with_a_note(models: Path) -> None:
    result = predict_all(models, _study(with_pet=False), ClinicalInputs(age_years=None, sex="F"))
    assert result.markers == () and result.survival == ()
    assert any(
        n.startswith("Survival model survival-test not applied: it needs the patient's age")
        for n in result.notes
    )
    assert any(n.startswith("MGMT model mgmt-test not applied") for n in result.notes)
    pet_note = next(n for n in result.notes if "mgmt-pet-test" in n)
    assert "PET series and the patient's age" in pet_note
    assert len(predict_all(models, _study(with_pet=False), None).notes) == 3


def test_missing_series_never_raises(models: Path) -> None:
    t1c_only = {k: v for k, v in _study(with_pet=False).items() if "_T1c_" in k or "_mask_" in k}
    result = predict_all(models, t1c_only, CLINICAL)
    assert result.markers == () and len(result.survival) == 1
    assert "MGMT model mgmt-test not applied: it needs T1, T2 and FLAIR series." in result.notes
    nothing = predict_all(models, {}, CLINICAL)
    assert nothing.markers == ()
    assert any("no tumour radiomic features" in n for n in nothing.notes)


def test_empty_region_is_imputed_not_refused(models: Path) -> None:
    result = predict_all(models, _study(with_pet=True, drop_region="ET"), CLINICAL)
    assert [m.provenance.model_id for m in result.markers] == ["mgmt-pet-test"]
    nan_et = {**_study(with_pet=True), "ET_T1c_firstorder_F0": math.nan}
    assert len(predict_all(models, nan_et, CLINICAL).markers) == 1


def test_features_never_extracted_are_a_note_not_an_error(models: Path) -> None:
    features = {k: v for k, v in _study(with_pet=False).items() if not k.endswith("_F1")}
    result = predict_all(models, features, CLINICAL)
    assert result.markers == ()
    assert any(
        n.startswith("MGMT model mgmt-test not applied:") and "parameter file" in n
        for n in result.notes
    )


def test_broken_variant_falls_back_to_the_next(models: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(models, root)
    with (root / "mgmt-pet-test" / "model.skops").open("ab") as fh:
        fh.write(b"tampered")
    result = predict_all(root, _study(with_pet=True), CLINICAL)
    assert [m.provenance.model_id for m in result.markers] == ["mgmt-test"]
    assert any(n.startswith("MGMT model mgmt-pet-test not applied:") for n in result.notes)


def test_broken_card_is_a_note_not_an_error(models: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(models, root)
    card = yaml.safe_load((root / "mgmt-pet-test" / "model.yaml").read_text())
    del card["target"]
    (root / "mgmt-pet-test" / "model.yaml").write_text(yaml.safe_dump(card))
    result = predict_all(root, _study(with_pet=True), CLINICAL)
    assert [m.provenance.model_id for m in result.markers] == ["mgmt-test"]
    assert any(
        n.startswith("The prediction model in mgmt-pet-test was not applied:") and "target" in n
        for n in result.notes
    )
    with pytest.raises(ModelCardError, match="target"):
        discover_cards(root)


def test_study_inputs_and_unmet_inputs_in_words() -> None:
    study = StudyInputs.from_features(_study(with_pet=False), ClinicalInputs(70, "O"))
    assert study.sequences == frozenset(MR) and study.clinical == frozenset({"age_years"})
    need = ModelInputs(sequences=(*MR, "PET"), clinical=("sex_male",))
    assert unmet_inputs(need, study) == (
        "it needs a PET series and the patient's sex (PatientSex M or F in the header)"
    )
    assert unmet_inputs(ModelInputs(sequences=MR), study) is None


def test_sequence_option_of_the_training_pipelines() -> None:
    assert parse_sequences("t1, T1C,t2,flair") == MR
    assert parse_sequences(None) is None and parse_sequences("") is None
    with pytest.raises(TrainingDataError, match="DWI"):
        parse_sequences("T1,DWI")
    cols = ["TC_PET_firstorder_Mean", "TC_T1_firstorder_Mean", "TC_mask_shape_Volume", "age_years"]
    assert select_sequences(cols, MR) == cols[1:]
    assert select_sequences(cols, None) == cols


MODELS = ROOT / "models"
MARKERS = ("egfr", "idh", "mgmt")


@pytest.mark.skipif(
    not (MODELS / "mgmt-pet-phantom-demo" / "model.yaml").is_file(),
    reason="PET demo variants not built (pipelines/train_radiogenomics.py)",
)
@pytest.mark.parametrize("with_pet", [False, True])
def test_shipped_demo_models_on_mr_only_and_pet_studies(with_pet: bool) -> None:
    cards = {c.id: c for c in discover_cards(MODELS)}
    for marker in MARKERS:
        mr, pet = cards[f"{marker}-phantom-demo"], cards[f"{marker}-pet-phantom-demo"]
        assert mr.requires is not None and mr.inputs.sequences == MR
        assert pet.requires is not None and pet.inputs.sequences == (*MR, "PET")
        assert mr.version == pet.version == "0.2.0"
        assert mr.synthetic_training_data and pet.synthetic_training_data
    features = {
        f: 0.0
        for card in cards.values()
        for f in card.features
        if f not in ("age_years", "sex_male") and (with_pet or "_PET_" not in f)
    }
    ids = sorted(cards)
    result = predict_all(MODELS, features, ClinicalInputs(58, "M"), model_ids=ids)
    suffix = "-pet-phantom-demo" if with_pet else "-phantom-demo"
    assert sorted(m.provenance.model_id for m in result.markers) == [
        f"{m}{suffix}" for m in MARKERS
    ]
    assert [s.provenance.model_id for s in result.survival] == ["survival-phantom-demo"]
    for marker in MARKERS:
        label = marker.upper()
        if with_pet:
            assert any(
                n.startswith(f"{label}: reported from the MR + PET model") for n in result.notes
            )
        else:
            assert (
                f"{label} model {marker}-pet-phantom-demo not applied: it needs a PET series."
                in result.notes
            )
    assert len(result.notes) == 3
