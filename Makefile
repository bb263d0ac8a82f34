# rgcds — the two commands of the README are `make demo` and `make test`.
# Each target installs what it needs: Debian packages (orthanc, dcmtk, dicom3tools)
# through apt-get when missing, then a venv from the hash-checked lock files.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
APT_PACKAGES := orthanc orthanc-dicomweb dcmtk dicom3tools strace chromium
DEMO_OUT ?= demo-out
NNUNET_VENV ?= .venv-nnunet
BENCH_VENV ?= .venv-bench

.PHONY: demo test install system-deps lock lint typecheck bench clean train-extra nnunet-extra bench-extra viewer

# --- system packages -------------------------------------------------------
system-deps:
	@missing=""; \
	command -v Orthanc >/dev/null 2>&1 || missing="$$missing orthanc"; \
	command -v storescu >/dev/null 2>&1 || missing="$$missing dcmtk"; \
	command -v dciodvfy >/dev/null 2>&1 || missing="$$missing dicom3tools"; \
	command -v strace >/dev/null 2>&1 || missing="$$missing strace"; \
	[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing="$$missing orthanc-dicomweb"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# --- Python environment ----------------------------------------------------
# numpy, setuptools and versioneer first (pyradiomics builds against them with
# --no-build-isolation), then everything else, every wheel checked against its hash.
# The locks are complete (uv resolved every dependency), so pip installs them with
# --no-deps: requirements-overrides.txt swaps rt-utils' opencv-python for the headless build.
$(VENV)/.installed: requirements.lock requirements-dev.lock requirements-build.lock requirements-overrides.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 ($(PYTHON)) is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=25"
	$(PIP) install -q --require-hashes -r requirements-build.lock
	$(PIP) install -q --require-hashes --no-deps --no-build-isolation -r requirements.lock -r requirements-dev.lock
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

install: system-deps $(VENV)/.installed

# The `train` extra: PyTorch CPU 2.13.0 (from the machine's wheel store or PyPI) and MONAI.
train-extra: install
	$(PIP) install -q torch==2.13.0 monai==1.6.1

# A venv apart from the daemon's: $(call side_venv,FOLDER,REQUIREMENTS-FILE).
define side_venv
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade "pip>=25"
	$(1)/bin/python -m pip install -q -r $(2)
	touch $(1)/.installed
endef

# The nnU-Net v2 environment: PyTorch CPU and nnunetv2 (pinned in requirements-nnunet.txt), apart
# from the daemon's venv. `rgcds models import-nnunet` runs in it, and the agreement test runs
# nnU-Net's own predictor in it (tests/peers).
$(NNUNET_VENV)/.installed: requirements-nnunet.txt
	$(call side_venv,$(NNUNET_VENV),$<)

nnunet-extra: $(NNUNET_VENV)/.installed

# The bench environment: the BraTS organisers' brats-evaluation (pinned in requirements-bench.txt),
# the peer metric that bench/segmentation.py scores with; apart from the daemon's venv.
$(BENCH_VENV)/.installed: requirements-bench.txt
	$(call side_venv,$(BENCH_VENV),$<)

bench-extra: $(BENCH_VENV)/.installed

# The OHIF v3 viewer's prebuilt dist from the npm registry (sha512-checked), for the viewer
# system test (headless Chromium through Playwright) and the demo.
OHIF_STAMP := build/ohif/.ohif-3.12.10
$(OHIF_STAMP): deploy/viewer/fetch_ohif.py
	$(PYTHON) deploy/viewer/fetch_ohif.py build/ohif

viewer: $(OHIF_STAMP)

# --- the contract --------------------------------------------------------------
# As a hospital runs it: a private Orthanc (DICOMweb) and `rgcds serve`, the demo studies pushed
# with storescu, the results read back from the PACS, the OHIF address of each study printed.
# `rgcds demo --out DIR` (no --pacs) is the same analysis offline; add --keep to look around.
demo: install $(OHIF_STAMP)
	$(VENV)/bin/rgcds demo --pacs --out $(DEMO_OUT)

test: install nnunet-extra $(OHIF_STAMP)
	RGCDS_NNUNET_PYTHON=$(abspath $(NNUNET_VENV))/bin/python $(VENV)/bin/python -m pytest tests

# --- developer helpers -------------------------------------------------------
lock:
	$(PY) -m uv pip compile requirements.in --override requirements-overrides.txt --generate-hashes --python-version 3.11 -o requirements.lock
	$(PY) -m uv pip compile requirements-build.in --generate-hashes --python-version 3.11 -o requirements-build.lock
	$(PY) -m uv pip compile requirements-dev.in --generate-hashes --python-version 3.11 -o requirements-dev.lock

lint: install
	$(VENV)/bin/ruff check rgcds pipelines tests bench

typecheck: install
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(NNUNET_VENV) $(BENCH_VENV) $(DEMO_OUT) .pytest_cache .mypy_cache
