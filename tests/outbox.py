"""The production outbox (the job store's, through ``JobStoreOutbox``) for delivery tests."""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import generate_uid

from rgcds.dicom.parse import InstanceMeta
from rgcds.pipeline.delivery import JobStoreOutbox
from rgcds.store import JobStore, OutboxItem


class StoreOutbox(JobStoreOutbox):
    """A job store with one study job (``job_id``) and the daemon's outbox adapter over it."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(JobStore(path))
        self._job_ids: list[int] = []
        self.job_id = self.new_job()

    def new_job(self) -> int:
        """Start a job for a new study (a re-run of the analysis) and make it current."""
        study = generate_uid()
        series = generate_uid()
        job = self.jobs.record_instance(
            InstanceMeta(
                study_uid=study,
                series_uid=series,
                sop_instance_uid=generate_uid(),
                sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                modality="MR",
                instance_number=1,
                images_in_acquisition=1,
            ),
            "/spool/mr.dcm",
            1,
        )
        self._job_ids.append(job.job_id)
        self.job_id = job.job_id
        return job.job_id

    def all(self) -> list[OutboxItem]:
        """Every item of every job, in id order."""
        items = [i for j in self._job_ids for i in self.jobs.outbox_items(j)]
        return sorted(items, key=lambda i: i.item_id)

    def get(self, item_id: int) -> OutboxItem:
        """One item by id."""
        return self.jobs.outbox_item(item_id)

    def close(self) -> None:
        """Close the job store."""
        self.jobs.close()
