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

# kamailio's tls module: SIP over TLS to the lab's registrar (tests/e2e/test_sip_tls_srtp.py)
APT_PACKAGES += kamailio-tls-modules

.PHONY: all deps deps-apt deps-py run postgres test test-fast lint format bench bench-quick dist clean

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

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,gateway]'
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

dist: deps-py
	rm -rf dist
	$(PY) -m pip wheel -q --no-deps -w dist .
	$(PY) -m pip wheel -q -w dist/wheelhouse gpiozero paho-mqtt
	@# pyalsaaudio is compiled on the phone at first boot (no wheels for the Pi on PyPI).
	$(PY) -m pip download -q --no-deps --no-binary :all: -d dist/wheelhouse pyalsaaudio

clean:
	rm -rf $(VENV) build dist *.egg-info $(RUN_DIR)
