# Deskphone firmware. On a fresh Debian 12 machine, `make run` and `make test` install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
RUN_DIR ?= run

# System packages: the real peers the tests and `make run` talk to, ALSA, and the image tools of flash.py.
APT_PACKAGES := python3 python3-venv python3-dev gcc make \
	kamailio baresip-core mosquitto mosquitto-clients \
	libasound2 libasound2-dev libasound2-plugins alsa-utils sox \
	dosfstools mtools fdisk xz-utils 7zip sip-tester
# The gateway's /stats page draws its charts with Debian's Chart.js (served from the package, no CDN);
# its browser test runs Debian's headless chromium.
APT_PACKAGES += libjs-chart.js chromium
# The gateway's PostgreSQL store (several instances): its tests and `make postgres` start Debian's.
APT_PACKAGES += postgresql
# openssl: the broker certificate commands of docs/INSTALLING.md, run by tests/tools/test_broker.py
APT_PACKAGES += openssl
# Linphone's CLI: a second, independent SIP stack that transfers the phone in the e2e tests
# (run in a network namespace of their own: unshare from util-linux, ip from iproute2).
APT_PACKAGES += linphone-cli iproute2
# make dist-pi: the aarch64 cross compiler, and arm64 Debian roots under QEMU for make test-aarch64;
# debugfs (e2fsprogs) lets flash.py read the image's release from its root partition.
APT_PACKAGES += crossbuild-essential-arm64 qemu-user-static binfmt-support mmdebstrap arch-test e2fsprogs

# kamailio's tls module: SIP over TLS to the lab's registrar (tests/e2e/test_sip_tls_srtp.py)
APT_PACKAGES += kamailio-tls-modules
# Our x86_64 pjsua2 wheel (tools/pjsua2/native.sh): g++ builds it, linked against the system's OpenSSL 3.
APT_PACKAGES += g++ libssl-dev

.PHONY: all deps deps-apt deps-py run postgres test test-fast test-aarch64 lint format bench bench-quick bench-gateway dist dist-pi pi-roots clean

all: test

deps: deps-apt deps-py

deps-apt:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo "installing system packages: $(APT_PACKAGES)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi
	@# kamailio and mosquitto also come as system services; the project starts its own instances on
	@# free loopback ports and leaves the system's alone.

PJPROJECT_TARBALL ?= ../shared/vendor/pjproject-2.15.1.tar.gz
# pyproject.toml's extra NAME, one requirement a line.
EXTRA = $(PY) -c 'import sys, tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"][sys.argv[1]], sep="\n")'

$(VENV)/.created:
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	touch $@

# x86_64: pjsua2 is our own wheel of the pinned pjproject (tools/pjsua2/config_site.h), built once per
# change of the tarball, config_site.h or the build scripts (the directory is named after their digest;
# about 4 min under nice on 2 loaded cores) and installed before the project, which requires it.
ifeq ($(shell uname -m),x86_64)
PJSUA2_SOURCES := $(PJPROJECT_TARBALL) $(sort $(wildcard tools/pjsua2/*)) tools/pi/wheel.sh
PJSUA2_KEY := $(shell cat $(PJSUA2_SOURCES) | sha256sum | cut -c1-16)
PJSUA2_PYTAG := $(shell python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
PJSUA2_WHEEL := build/pjsua2-$(PJSUA2_KEY)/pjsua2-2.15.1-$(PJSUA2_PYTAG)-$(PJSUA2_PYTAG)-linux_x86_64.whl
endif

$(PJSUA2_WHEEL): | $(VENV)/.created deps-apt
	$(EXTRA) dist | $(PY) -m pip install -q -r /dev/stdin
	rm -rf build/pjsua2-*
	PYTHON=$(abspath $(PY)) PATH=$(abspath $(VENV))/bin:$$PATH \
		nice -n 10 tools/pjsua2/native.sh $(PJPROJECT_TARBALL) $(dir $@)

$(VENV)/.installed: pyproject.toml $(VENV)/.created $(PJSUA2_WHEEL)
	@# A venv made before our wheel has PyPI's pjsua2-python, whose pjsua2/ package would shadow it.
	$(if $(PJSUA2_WHEEL),$(PY) -m pip uninstall -q -y pjsua2-python)
	$(if $(PJSUA2_WHEEL),$(PY) -m pip install -q --force-reinstall --no-deps $(PJSUA2_WHEEL))
	@# compat: a plain path .pth, so that the lab and the bench start the phone as its real install
	@# does (setuptools' default editable mode is an import hook: `python -c pass` 55 ms instead of 26).
	@# setuptools (84) calls compat "transitional": should a release drop it, the default mode serves.
	$(PY) -m pip install -q -e '.[test,gateway,dist]' --config-settings editable_mode=compat \
		|| $(PY) -m pip install -q -e '.[test,gateway,dist]'
	touch $@

deps-py: $(VENV)/.installed

run: deps
	$(PY) -m lab.demo --dir $(RUN_DIR)

# A scratch PostgreSQL on 127.0.0.1 for gateways sharing one store; prints the [storage] lines.
postgres: deps
	$(PY) -m lab.servers.postgres --dir $(RUN_DIR)/postgres

test: deps
	$(PY) -m pytest -q

test-fast: deps
	$(PY) -m pytest -q -m "not e2e"

lint: deps-py
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: deps-py
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Ours vs baresip-as-the-phone (baresip-core's mqtt module), plus tests/faults: bench/results/results.md.
# Start-up and audio-path figures sniff loopback (root or CAP_NET_RAW); without it they are skipped.
# bench.broker_tls: connect -> CONNACK to the broker, plain vs TLS vs TLS with a client certificate.
bench: deps
	$(PY) -m bench.run
	$(PY) -m bench.broker_tls

bench-quick: deps
	$(PY) -m bench.run --quick
	$(PY) -m bench.broker_tls --quick

# The CRM gateway at 1,000 desks (1,000 simulated phones, 3 real phone daemons, the fake Bitrix24
# portal with its 2 requests/s limit, batch on and off, one and two instances): about 10 minutes,
# so not in CI; bench/results/gateway_scale.{json,md}. BENCH_GATEWAY_ARGS=--quick: 100 desks, ~3 min.
bench-gateway: deps
	nice -n 10 $(PY) -m bench.gateway_scale $(BENCH_GATEWAY_ARGS)

# make dist: the bundle for this machine's architecture. make dist-pi (= make dist BOARD=rpi-v1):
# the Raspberry Pi bundle in dist/rpi-v1, cross-built here from the pinned pjproject source.
BOARD ?=
PI_DIST ?= dist/rpi-v1
PI_BUILD ?= build/pi

dist: deps-py
ifeq ($(BOARD),rpi-v1)
	$(MAKE) dist-pi
else
	rm -rf dist/wheelhouse dist/*.whl
	$(PY) -m pip wheel -q --no-deps -w dist .
	$(PY) -m pip wheel -q -w dist/wheelhouse gpiozero paho-mqtt pyalsaaudio
	$(if $(PJSUA2_WHEEL),cp $(PJSUA2_WHEEL) dist/wheelhouse/)
endif

dist-pi: deps
	PYTHON=$(abspath $(PY)) PATH=$(abspath $(VENV))/bin:$$PATH PJPROJECT_TARBALL=$(PJPROJECT_TARBALL) \
		nice -n 10 tools/pi/dist.sh $(PI_DIST) $(PI_BUILD)

# arm64 Debian roots standing in for the phone's root file system (bookworm also runs the tests).
PI_ROOTS ?= $(PI_BUILD)/roots
pi-roots: deps-apt
	tools/pi/emulation.sh
	rm -rf $(PI_ROOTS)
	nice -n 10 tools/pi/root.sh bookworm $(PI_ROOTS)/bookworm kamailio baresip-core mosquitto
	nice -n 10 tools/pi/root.sh trixie $(PI_ROOTS)/trixie

# The Raspberry Pi bundle proven on aarch64 under QEMU: the wheel checks, the first boot of a
# provisioned card for bookworm and trixie, the unit tests and tests/sip_stack. Builds everything
# fresh (nothing is reused across runs) and removes the roots at the end.
test-aarch64: deps
	@start=$$(date +%s); \
	$(MAKE) -j2 --no-print-directory dist-pi pi-roots && \
	PI_BUNDLE=$(PI_DIST) PI_ROOTS=$(PI_ROOTS) $(PY) -m pytest -q tests/aarch64 && \
	PYTHON=$(abspath $(PY)) tools/pi/test_in_root.sh $(PI_ROOTS)/bookworm $(PI_DIST) $(PI_BUILD); \
	status=$$?; rm -rf $(PI_ROOTS); \
	echo "test-aarch64: $$(( $$(date +%s) - start )) s, exit $$status"; exit $$status

clean:
	rm -rf $(VENV) build dist *.egg-info $(RUN_DIR)
