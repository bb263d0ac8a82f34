"""Typed settings for rgcds: one object, read from a TOML file and ``RGCDS_*`` variables.

The TOML keys are a public contract that operators write (see ``deploy/rgcds.toml.example``);
sections are only ever added, never renamed. Precedence, highest first: ``RGCDS_*``
environment variables (nested with ``__``, e.g. ``RGCDS_LISTENER__PORT=11113``), the TOML
file given with ``--config``, then the defaults below. Unknown keys and bad values are errors
that name the key and the file.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from rgcds.exceptions import ConfigError
from rgcds.settings import (
    ClassificationSettings,
    InferenceSettings,
    PetSettings,
    PreprocessingSettings,
    QcSettings,
)

_AE_MAX = 16


def _check_ae_title(value: str) -> str:
    # PS3.5 (AE): only leading and trailing spaces are insignificant; a tab or newline is
    # part of the value (and then fails the printable-ASCII check below).
    stripped = value.strip(" ")
    if not stripped or len(stripped) > _AE_MAX or "\\" in stripped:
        raise ValueError(
            f"an AE title has 1 to {_AE_MAX} characters and no backslash, got {value!r}"
        )
    if not all(32 <= ord(c) < 127 for c in stripped):
        raise ValueError(f"an AE title is printable ASCII, got {value!r}")
    return stripped


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Section):
    """Optional DICOM TLS on the listener (TLS 1.2 or newer)."""

    enabled: bool = False
    certificate: Path | None = None
    private_key: Path | None = None
    ca_certificates: Path | None = None
    require_client_certificate: bool = False


class CallingAE(_Section):
    """A calling AE title pinned to a host (the ``allowed_calling_aets`` table form)."""

    ae_title: str
    host: str | None = None

    _ae = field_validator("ae_title")(classmethod(lambda cls, v: _check_ae_title(v)))


class ListenerSettings(_Section):
    """The DICOM Storage SCP that PACS and scanners push studies to.

    Receive limits (see ``docs/conformance.md``): a connection that has not sent its
    A-ASSOCIATE-RQ is *pending*; at most ``max_pending_connections`` are pending, at most
    ``max_pending_per_address`` from one peer address (the oldest pending one is closed to
    make room). The TLS handshake and the A-ASSOCIATE-RQ must complete within
    ``acse_timeout`` of the connection, every PDU within ``network_timeout`` of its first
    byte. An A-ASSOCIATE-RQ above ``max_associate_request_size`` bytes, a P-DATA-TF PDU above
    ``max_pdu_size`` (the maximum this listener negotiates; 0 means the instance limit) and a
    data set above ``max_instance_size`` bytes (received or, when deflated, inflated) abort
    the association before they are buffered.
    """

    ae_title: str = "RGCDS"
    host: str = "0.0.0.0"  # noqa: S104 - a DICOM node listens on the hospital network
    port: int = Field(default=11112, ge=1, le=65535)
    allowed_calling_aets: list[str | CallingAE] = Field(default_factory=list)
    max_associations: int = Field(default=10, ge=1, le=1000)
    max_pdu_size: int = Field(default=262144, ge=0)
    acse_timeout: float = Field(default=30.0, gt=0)
    dimse_timeout: float = Field(default=60.0, gt=0)
    network_timeout: float = Field(default=60.0, gt=0)
    max_pending_connections: int = Field(default=32, ge=1, le=10000)
    max_pending_per_address: int = Field(default=8, ge=1, le=10000)
    max_associate_request_size: int = Field(default=65536, ge=1024, le=16_777_216)
    max_instance_size: int = Field(default=2_147_483_648, ge=1024)
    tls: TlsSettings = Field(default_factory=TlsSettings)

    _ae = field_validator("ae_title")(classmethod(lambda cls, v: _check_ae_title(v)))

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not value or any(c.isspace() for c in value):
                raise ValueError(
                    f"host must be an IP address or host name, got {value!r}"
                ) from None
        return value

    @field_validator("allowed_calling_aets")
    @classmethod
    def _calling(cls, value: list[str | CallingAE]) -> list[str | CallingAE]:
        return [_check_ae_title(v) if isinstance(v, str) else v for v in value]


class StorageSettings(_Section):
    """Where the spool, the job store and the work directories live."""

    root: Path = Path("/var/lib/rgcds")
    min_free_bytes: int = Field(default=1_073_741_824, ge=0)
    reserve_bytes: int = Field(default=16 << 20, ge=0)
    """A preallocated file under the root, deleted when the disk is full so that the job
    store still opens (rgcds.store.reserve); 0 turns it off."""
    duplicate_policy: Literal["replace", "ignore", "reject"] = "replace"
    durability: Literal["instance", "association"] = "instance"
    """When a C-STORE success is sent: ``instance`` once the instance is fsynced (survives a
    power loss), ``association`` once it reached the kernel (survives a crash of rgcds;
    everything is fsynced before the A-RELEASE response). See docs/operations.md."""


class TriggerSettings(_Section):
    """When a study counts as complete and is queued for processing."""

    stable_seconds: float = Field(default=10.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)


class DestinationSettings(_Section):
    """A DICOM node that receives results (C-STORE)."""

    name: str = Field(min_length=1)
    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)
    calling_ae_title: str | None = None
    tls: TlsSettings = Field(default_factory=TlsSettings)

    _ae = field_validator("ae_title")(classmethod(lambda cls, v: _check_ae_title(v)))

    @field_validator("calling_ae_title")
    @classmethod
    def _calling_ae(cls, value: str | None) -> str | None:
        return None if value is None else _check_ae_title(value)


class LoggingSettings(_Section):
    """Log output: ``auto`` is JSON lines when stdout is not a terminal, console otherwise."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class MetricsSettings(_Section):
    """Prometheus metrics endpoint (``/metrics``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=1, le=65535)


class PairingSettings(_Section):
    """``[pairing]``: analyse a PET/CT study together with the MR study of the same patient."""

    enabled: bool = True
    window_days: int = Field(default=14, ge=0, le=3650)


class QuerySettings(_Section):
    """``[query]``: a PACS asked for a missing partner study (C-FIND, then C-MOVE).

    C-MOVE sends the partner to ``move_destination`` (default: the listener's AE title),
    which the PACS must know as a DICOM modality. (C-GET is not offered.)
    """

    ae_title: str = Field(min_length=1, max_length=16)
    host: str
    port: int = Field(ge=1, le=65535)
    calling_ae_title: str | None = None
    retrieve: Literal["move"] = "move"
    move_destination: str | None = None
    timeout_seconds: float = Field(default=120.0, gt=0)


class ProcessingSettings(_Section):
    """Where and how studies are processed.

    ``embedded`` runs the Prefect flow in the daemon's process with Prefect's local
    ephemeral API (SQLite); ``server`` submits flow runs to a Prefect server's deployment,
    whose workers (other machines, shared storage) process them.
    """

    mode: Literal["embedded", "server"] = "embedded"
    segmentation_model: str = "brats-unet-phantom"
    prefect_api_url: str | None = None
    deployment: str = "process-study/rgcds"
    work_pool: str = "rgcds"
    gpu_concurrency_limit: int = Field(default=1, ge=1)
    concurrent_studies: int = Field(default=1, ge=1, le=64)
    radiomics_workers: int = Field(default=2, ge=1, le=64)
    # The demo prediction models were trained on features of this parameter file and these
    # regions; use "radiomics_mri.yaml" (1 mm, all classes) for a research extraction.
    radiomics_params: str = "radiomics_fast.yaml"
    radiomics_regions: tuple[Literal["NCR", "ET", "ED", "TC", "WT"], ...] = ("TC", "ET", "ED")
    stage_retries: int = Field(default=2, ge=0, le=10)
    # Claims of one job before it is given up with a "not analysed" report: a study whose
    # processing crashes the daemon (Restart=on-failure) must not loop forever.
    max_attempts: int = Field(default=3, ge=1, le=100)
    postoperative: Literal["auto", "always", "never"] = "auto"
    postoperative_segmentation_model: str = "postop-unet-phantom"
    # Tumour labels further than this outside the brain mask (scalp, skull, orbit) are removed
    # before the quality gate and every measurement; None keeps them (the gate then judges
    # the raw output). The margin keeps a cortical tumour that the mask cuts by a voxel or two.
    tumour_brain_margin_mm: float | None = Field(default=5.0, ge=0.0)
    clinical_data_file: Path | None = None
    write_secondary_capture: bool = True
    write_pdf: bool = True


class ExportSettings(_Section):
    """Delivery of results through the outbox."""

    initial_backoff_seconds: float = Field(default=10.0, gt=0)
    max_backoff_seconds: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=50, ge=1)
    poll_seconds: float = Field(default=5.0, gt=0)


class Settings(BaseSettings):
    """All of rgcds' configuration. Load it once with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="RGCDS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    listener: ListenerSettings = Field(default_factory=ListenerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    trigger: TriggerSettings = Field(default_factory=TriggerSettings)
    destinations: list[DestinationSettings] = Field(default_factory=list)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    classification: ClassificationSettings = Field(default_factory=ClassificationSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    pet: PetSettings = Field(default_factory=PetSettings)
    preprocessing: PreprocessingSettings = Field(default_factory=PreprocessingSettings)
    qc: QcSettings = Field(default_factory=QcSettings)
    pairing: PairingSettings = Field(default_factory=PairingSettings)
    query: QuerySettings | None = None
    research_mode: bool = False

    @field_validator("destinations")
    @classmethod
    def _unique_names(cls, value: list[DestinationSettings]) -> list[DestinationSettings]:
        names = [d.name for d in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"destination names must be unique, repeated: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _calling_ae_from_listener(self) -> Settings:
        # Results go out under the listener's own AE title (what the PACS was configured
        # with) unless a destination names another one.
        if any(d.calling_ae_title is None for d in self.destinations):
            filled = [
                d if d.calling_ae_title is not None
                else d.model_copy(update={"calling_ae_title": self.listener.ae_title})
                for d in self.destinations
            ]
            object.__setattr__(self, "destinations", filled)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first (highest), then the TOML file's values passed as init kwargs.
        return (env_settings, init_settings)


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'")
        else:
            lines.append(f"'{key}': {err['msg']} (got {err.get('input')!r})")
    return f"Invalid configuration in {source}: " + "; ".join(lines) + "."


def load_settings(path: Path | str | None = None) -> Settings:
    """Read the settings from a TOML file and ``RGCDS_*`` variables.

    Parameters
    ----------
    path
        The TOML file; ``None`` uses the built-in defaults and the environment only.

    Returns
    -------
    Settings
        The validated, frozen settings object.

    Raises
    ------
    ConfigError
        If the file is missing or not TOML, or a key is unknown or a value invalid; the
        message names the key and the file.
    """
    data: dict[str, Any] = {}
    source = "the defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"The configuration file {path} does not exist.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"The configuration file {path} is not valid TOML: {exc}.") from None
    env_keys = sorted(k for k in os.environ if k.upper().startswith("RGCDS_"))
    if env_keys:
        source += " and environment variables " + ", ".join(env_keys)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


__all__ = [
    "CallingAE",
    "DestinationSettings",
    "ExportSettings",
    "ListenerSettings",
    "LoggingSettings",
    "MetricsSettings",
    "PairingSettings",
    "ProcessingSettings",
    "QuerySettings",
    "Settings",
    "StorageSettings",
    "TlsSettings",
    "TriggerSettings",
    "load_settings",
]
