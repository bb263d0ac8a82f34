"""Studies seen and studies retrieved: the records that pair a PET/CT study with the MR study
of the same patient (by a keyed hash of the patient, never the patient's id)."""

from __future__ import annotations

import time

from rgcds.store.db import Database


class StudyTable(Database):
    """The ``studies`` and ``retrieved`` tables."""

    def unrecorded_studies(self) -> list[str]:
        """Studies with received instances but no :meth:`record_study` row yet."""
        rows = self._query(
            "SELECT DISTINCT study_uid FROM instances WHERE study_uid NOT IN "
            "(SELECT study_uid FROM studies) ORDER BY study_uid"
        )
        return [str(r[0]) for r in rows]

    def record_study(
        self, study_uid: str, patient_key: str, study_date: str | None, now: float | None = None
    ) -> None:
        """Keep a study's pseudonymous patient key (a hash, never the ID) and its date."""
        stamp = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO studies (study_uid, patient_key, study_date, recorded_at) "
                "VALUES (?, ?, ?, ?)",
                (study_uid, patient_key, study_date, stamp),
            )

    def recorded_studies(self) -> list[tuple[str, str]]:
        """``(study_uid, patient_key)`` of every recorded study."""
        rows = self._query("SELECT study_uid, patient_key FROM studies ORDER BY study_uid")
        return [(str(r[0]), str(r[1])) for r in rows]

    def study_record(self, study_uid: str) -> tuple[str, str | None] | None:
        """``(patient_key, study_date)`` of a recorded study, else ``None``."""
        rows = self._query(
            "SELECT patient_key, study_date FROM studies WHERE study_uid=?", (study_uid,)
        )
        return (str(rows[0][0]), rows[0][1]) if rows else None

    def patient_studies(self, patient_key: str) -> list[tuple[str, str | None]]:
        """``(study_uid, study_date)`` of every recorded study of one patient."""
        rows = self._query(
            "SELECT study_uid, study_date FROM studies WHERE patient_key=? ORDER BY study_uid",
            (patient_key,),
        )
        return [(str(r[0]), r[1]) for r in rows]

    def mark_retrieved(self, study_uid: str, for_study: str, now: float | None = None) -> None:
        """Record that ``study_uid`` is fetched from a PACS only as ``for_study``'s partner."""
        stamp = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO retrieved (study_uid, for_study, retrieved_at) "
                "VALUES (?, ?, ?)",
                (study_uid, for_study, stamp),
            )

    def retrieved_for(self, study_uid: str) -> str | None:
        """The study a retrieved partner was fetched for, else ``None``."""
        rows = self._query("SELECT for_study FROM retrieved WHERE study_uid=?", (study_uid,))
        return str(rows[0][0]) if rows else None

    def study_modalities(self, study_uid: str) -> frozenset[str]:
        """The Modality values of a study's received instances."""
        rows = self._query(
            "SELECT DISTINCT modality FROM instances WHERE study_uid=?", (study_uid,)
        )
        return frozenset(str(r[0]) for r in rows)


__all__ = ["StudyTable"]
