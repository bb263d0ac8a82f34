"""The SCU association of the result delivery: one association to one destination, and
the export error that says why it could not be opened (A-ASSOCIATE-RJ result, no accepted
presentation context, abort, no answer).

Re-exported by :mod:`rgcds.results.export`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association

from rgcds.config import DestinationSettings
from rgcds.exceptions import PermanentExportError, TransientExportError

DEFAULT_CALLING_AE = "RGCDS"


class AssociateResult(IntEnum):
    """A-ASSOCIATE-RJ result values (PS3.8 9.3.4)."""

    REJECTED_PERMANENT = 0x01
    REJECTED_TRANSIENT = 0x02


@dataclass(frozen=True, slots=True)
class NetworkTimeouts:
    """Timeouts (seconds) of the SCU."""

    connection: float = 10.0
    acse: float = 30.0
    dimse: float = 60.0
    network: float = 60.0


class _Session:
    """One association to one destination, with what the peer said when it refused."""

    def __init__(
        self,
        destination: DestinationSettings,
        sop_classes: Iterable[tuple[str, str]],
        timeouts: NetworkTimeouts,
        calling_ae_title: str = DEFAULT_CALLING_AE,
    ) -> None:
        self.destination = destination
        calling = destination.calling_ae_title or calling_ae_title
        ae = AE(ae_title=calling)
        ae.connection_timeout = timeouts.connection
        ae.acse_timeout = timeouts.acse
        ae.dimse_timeout = timeouts.dimse
        ae.network_timeout = timeouts.network
        syntaxes: dict[str, set[str]] = defaultdict(set)
        for sop_class, ts in sop_classes:
            syntaxes[sop_class].update({ts, ExplicitVRLittleEndian, ImplicitVRLittleEndian})
        for sop_class, ts_set in sorted(syntaxes.items()):
            ae.add_requested_context(sop_class, sorted(ts_set))
        self._ae = ae
        self._primitives: list[Any] = []

    def _on_acse(self, event: evt.Event) -> None:
        self._primitives.append(getattr(event, "primitive", None))

    def open(self) -> Association:
        """Associate, or raise the export error that says why not."""
        dest = self.destination
        tls_args = None
        if dest.tls.enabled:
            from rgcds.dicom.tls import client_ssl_context

            tls_args = (client_ssl_context(dest.tls), dest.host)
        try:
            assoc = self._ae.associate(
                dest.host,
                dest.port,
                ae_title=dest.ae_title,
                tls_args=tls_args,
                evt_handlers=[(evt.EVT_ACSE_RECV, self._on_acse)],
            )
        except OSError as exc:
            raise TransientExportError(
                f"Destination {dest.name} ({dest.host}:{dest.port}) cannot be reached: {exc}."
            ) from exc
        if assoc.is_established:
            return assoc
        where = f"Destination {dest.name} ({dest.ae_title}@{dest.host}:{dest.port})"
        answer = next((p for p in self._primitives if getattr(p, "result", None) is not None), None)
        if assoc.is_rejected and answer is not None:
            text = f"{answer.result_str}, source {answer.source_str}, reason {answer.reason_str}"
            if answer.result == AssociateResult.REJECTED_PERMANENT:
                raise PermanentExportError(
                    f"{where} rejected the association permanently ({text}); check the AE "
                    "titles and the peer's configuration."
                )
            raise TransientExportError(f"{where} rejected the association transiently ({text}).")
        if answer is not None and answer.result == 0x00:
            raise PermanentExportError(
                f"{where} accepted none of the requested SOP classes; the peer does not store "
                "these result objects (configure it to accept SEG, SR, SC and Encapsulated PDF)."
            )
        if assoc.is_aborted:
            raise TransientExportError(f"{where} aborted the association.")
        raise TransientExportError(f"{where} did not answer (connection refused or timed out).")
