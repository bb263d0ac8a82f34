"""Files cut short on disk are found before analysis, and their series is left out, saying so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from rgcds.results.testing import make_mr_series
from rgcds.study import index_study
from rgcds.study.integrity import truncation

WHOLE = ["MR_small.dcm", "CT_small.dcm", "JPEG2000.dcm", "emri_small.dcm", "SC_rgb_rle.dcm",
         "rtdose.dcm"]


def _check(path: Path) -> str | None:
    with open(path, "rb") as fh:
        ds = pydicom.dcmread(fh, stop_before_pixels=True)
        return truncation(fh, ds)


def _cut(src: Path, dst: Path, keep: int) -> Path:
    dst.write_bytes(src.read_bytes()[:keep])
    return dst


@pytest.mark.parametrize("name", WHOLE)
def test_whole_files_of_a_peer_pass(name: str) -> None:
    assert _check(Path(str(get_testdata_file(name)))) is None


def test_native_pixel_data_cut_short(tmp_path: Path) -> None:
    src = Path(str(get_testdata_file("MR_small.dcm")))
    reason = _check(_cut(src, tmp_path / "cut.dcm", 5000))
    assert reason is not None and "into its 8192 bytes of pixel data" in reason
    assert _check(_cut(src, tmp_path / "one.dcm", src.stat().st_size - 140)) is not None


def test_encapsulated_pixel_data_cut_short(tmp_path: Path) -> None:
    src = Path(str(get_testdata_file("JPEG2000.dcm")))
    reason = _check(_cut(src, tmp_path / "cut.dcm", src.stat().st_size - 20))
    assert reason is not None and "compressed pixel data" in reason
    assert _check(_cut(src, tmp_path / "end.dcm", src.stat().st_size - 8)) is not None


def test_header_cut_before_pixel_data(tmp_path: Path) -> None:
    src = Path(str(get_testdata_file("MR_small.dcm")))
    reason = _check(_cut(src, tmp_path / "cut.dcm", 900))
    assert reason is not None and "before its pixel data" in reason


def test_index_leaves_out_the_series_with_a_cut_instance(tmp_path: Path) -> None:
    t1c = make_mr_series(slices=6, rows=16, cols=16, seed=1)
    t2 = make_mr_series(slices=6, rows=16, cols=16, seed=2)
    for ds in t2:  # the same study, another series
        ds.StudyInstanceUID = t1c[0].StudyInstanceUID
        ds.SeriesNumber = 7
        ds.SeriesDescription = "t2_tse_tra"
    for name, series in (("t1c", t1c), ("t2", t2)):
        (tmp_path / name).mkdir()
        for i, ds in enumerate(series):
            ds.save_as(tmp_path / name / f"{i}.dcm", enforce_file_format=True)
    victim = tmp_path / "t2" / "3.dcm"
    victim.write_bytes(victim.read_bytes()[:-100])  # the disk filled mid-write
    index = index_study(tmp_path)
    assert [s.series_instance_uid for s in index.series] == [t1c[0].SeriesInstanceUID]
    assert [d.path for d in index.damaged] == [victim]
    (note,) = index.damage_notes()
    assert "series 7 (t2_tse_tra) was not used" in note and "cut short" in note
    assert "resend" in note


def test_index_says_why_when_every_file_is_cut(tmp_path: Path) -> None:
    from rgcds.study.index import NoDicomFilesError

    src = Path(str(get_testdata_file("MR_small.dcm")))
    shutil.copy(src, tmp_path / "a.dcm")
    _cut(src, tmp_path / "a.dcm", 5000)
    with pytest.raises(NoDicomFilesError, match="1 cut short on disk"):
        index_study(tmp_path)
