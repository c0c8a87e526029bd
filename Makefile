# otamesh — two commands do everything on a fresh Debian 12 machine (as root):
#   make run    installs what is missing, builds, starts a gateway on embedded defaults
#   make test   installs what is missing, builds, runs every test
#   make demo   (root) the three-floors staged-rollout lab, narrated, then torn down
# Other targets: make soak (root, SOAK_MINUTES=10), make fuzz (FUZZ_SECONDS=60), make format, make lint, make build, make release, make install, make bench, make clean.

SHELL := /bin/bash
SWIFT ?= swift
# System packages the build and tests use (Debian names).
APT_PACKAGES := pkg-config liblzma-dev libavahi-compat-libdnssd-dev libsqlite3-dev libssl-dev \
                xz-utils python3 python3-pip util-linux procps curl wget openssl tinyproxy \
                iproute2 nftables dbus avahi-daemon avahi-utils chromium chromium-driver socat libnss3-tools \
                swupdate cpio
# Reference tools the tests cross-check against (PyPI), pinned.
# selenium drives Debian's chromium headless for the dashboard test (no browser download).
PIP_PACKAGES := esptool==5.6.0 imgtool==2.5.0 tuf==7.0.1 zeroconf==0.136.2 selenium==4.51.0 littlefs-python==0.19.0 aiohttp==3.14.5
# Installed without their dependencies: `python3 -m espota` (ESPHome's native OTA host tool)
# imports only esphome.core and esphome.helpers, which load without esphome's own dependencies.
# rauc-hawkbit's DDI client (a second hawkBit client in the DDI tests) needs only aiohttp, not gbulb.
PIP_NODEPS_PACKAGES := espota==0.5.0 esphome==2026.6.5 rauc-hawkbit==0.2.0
PYTHON ?= python3

.PHONY: run test lint format demo soak fuzz build release install bench bench-gossip bench-sim deps deps-apt deps-pip pip-install clean

run: deps build
	@echo "starting otamesh agent (Ctrl-C stops it)"
	@exec "$$($(SWIFT) build --show-bin-path)/otamesh" agent $(ARGS)

test: deps lint build
	OTAMESH_BIN_DIR="$$($(SWIFT) build --show-bin-path)" $(SWIFT) test 2>&1 | tee .test-output.log; \
	  exit $${PIPESTATUS[0]}

# The tree is formatted by .swift-format (swift-format, part of the toolchain): `make format`
# rewrites it, `make lint` (run by `make test`) fails on any file that is not.
FORMATTED = Sources Tests Benchmarks Fuzz Package.swift
lint:
	@$(SWIFT) format lint --strict --recursive --parallel $(FORMATTED) || { echo "make lint: run 'make format'"; exit 1; }

format:
	$(SWIFT) format format --in-place --recursive --parallel $(FORMATTED)

# A narrated staged rollout on three floors of emulated devices (Topologies/three-floors-rollout.yaml):
# 1 % → 100 %, then a failing floor halts the next rollout everywhere. Root only (network
# namespaces); leftovers of an interrupted demo are removed first; exit 0 only if it passed.
DEMO_TOPOLOGY := Topologies/three-floors-rollout.yaml

demo: deps build
	@[ "$$(id -u)" = 0 ] || { echo "make demo: run as root (the lab creates network namespaces)"; exit 2; }
	@bin="$$($(SWIFT) build --show-bin-path)"; \
	  "$$bin/otamesh" lab down $(DEMO_TOPOLOGY) >/dev/null; \
	  "$$bin/otamesh" lab run $(DEMO_TOPOLOGY) --narrate --timeout 300 $(if $(DEMO_HOLD),--hold $(DEMO_HOLD))

# A long fault-injected run of the whole mesh (root; docs/soak.md): SOAK_MINUTES (default 10) of
# gateway SIGKILLs and restarts, partitions, 10-30 % loss, a full disk and failing devices under
# staged rollouts on Topologies/soak-campus-32.yaml, every invariant checked; summary table at the
# end and in /tmp/otamesh-lab/soak-campus-32/soak-summary.md. SOAK_SEED picks the schedule.
SOAK_MINUTES ?= 10
SOAK_SEED ?= 1
SOAK_TOPOLOGY := Topologies/soak-campus-32.yaml

soak: deps build
	@[ "$$(id -u)" = 0 ] || { echo "make soak: run as root (the lab creates network namespaces)"; exit 2; }
	@bin="$$($(SWIFT) build --show-bin-path)"; \
	  "$$bin/otamesh" lab down $(SOAK_TOPOLOGY) >/dev/null; \
	  "$$bin/otamesh" lab soak $(SOAK_TOPOLOGY) --duration $(SOAK_MINUTES)m --seed $(SOAK_SEED)

build:
	@command -v $(SWIFT) >/dev/null || { echo "make: Swift 6.x toolchain not found (expected 'swift' on PATH, e.g. /opt/swift/usr/bin)"; exit 1; }
	$(SWIFT) build

# Statically linked Swift runtime: one binary a gateway can run without a Swift toolchain.
release: deps
	$(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-static
	@echo "binaries: $$($(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-static --show-bin-path)"

# Installs the release binary, the systemd unit and a commented /etc/otamesh/otamesh.yaml (kept if
# present), and creates the system user `otamesh`; then: systemctl enable --now otamesh.
# PREFIX (default /usr/local) and DESTDIR as usual; never run by the tests.
PREFIX ?= /usr/local

install: release
	@[ -n "$(DESTDIR)" ] || [ "$$(id -u)" = 0 ] || { echo "make install: run as root (or set DESTDIR)"; exit 2; }
	@bin="$$($(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-static --show-bin-path)"; \
	  install -D -m 0755 "$$bin/otamesh" "$(DESTDIR)$(PREFIX)/bin/otamesh"
	sed 's|/usr/local/bin/otamesh|$(PREFIX)/bin/otamesh|' packaging/otamesh.service > .otamesh.service.tmp
	install -D -m 0644 .otamesh.service.tmp "$(DESTDIR)/etc/systemd/system/otamesh.service"; rm -f .otamesh.service.tmp
	@[ -e "$(DESTDIR)/etc/otamesh/otamesh.yaml" ] || install -D -m 0644 packaging/otamesh.yaml "$(DESTDIR)/etc/otamesh/otamesh.yaml"
	@if [ -z "$(DESTDIR)" ]; then \
	  id -u otamesh >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/otamesh --no-create-home --shell /usr/sbin/nologin otamesh; \
	  ! command -v systemctl >/dev/null || systemctl daemon-reload; \
	fi
	@echo "installed $(PREFIX)/bin/otamesh and otamesh.service; start it: systemctl enable --now otamesh"

# Real peers the benchmarks measure against (installed only for make bench / bench-gossip).
BENCH_APT_PACKAGES := nginx-light wrk serf

bench: deps
	@$(MAKE) --no-print-directory deps-apt APT_PACKAGES="$(BENCH_APT_PACKAGES)"
	Benchmarks/run.sh

# Gossip dissemination against serf (user events) on loopback, 16 and 32 nodes each.
bench-gossip: deps
	@$(MAKE) --no-print-directory deps-apt APT_PACKAGES="$(BENCH_APT_PACKAGES)"
	$(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-static --product otamesh
	python3 Benchmarks/gossip_compare.py --otamesh "$$($(SWIFT) build -c release --static-swift-stdlib --scratch-path .build-static --show-bin-path)/otamesh" --out Benchmarks/results/gossip.md

# libFuzzer on every parser that takes outside bytes (Sources/OTAMeshFuzz; docs/robustness.md):
# FUZZ_SECONDS each (default 60), FUZZ_TARGETS= a subset. Not part of `make test`, which only
# replays the seed corpora in Tests/Fixtures/fuzz. Findings go to fuzz-findings/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

fuzz: deps
	SWIFT="$(SWIFT)" FUZZ_SECONDS="$(FUZZ_SECONDS)" FUZZ_TARGETS="$(FUZZ_TARGETS)" Fuzz/run.sh

# The gossip simulator's tables (N = 100, 1,000, 10,000; 0 % and 10 % loss), release build.
bench-sim:
	Benchmarks/simulate.sh 1 Benchmarks/results/simulate.txt

deps: deps-apt deps-pip

# Installs only what is missing. policy-rc.d stops apt from starting any daemon it pulls
# in (avahi-daemon must never run in the host's network namespace); no recommends.
deps-apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; guard=1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; rc=$$?; \
	  if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	  exit $$rc; \
	fi

deps-pip:
	@$(MAKE) --no-print-directory pip-install SPECS="$(PIP_PACKAGES)" PIP_FLAGS=""
	@$(MAKE) --no-print-directory pip-install SPECS="$(PIP_NODEPS_PACKAGES)" PIP_FLAGS="--no-deps"

# Installs the pinned SPECS that are missing or at another version, with PIP_FLAGS.
pip-install:
	@missing=""; for spec in $(SPECS); do \
	  name=$${spec%%==*}; want=$${spec##*==}; \
	  have=$$($(PYTHON) -m pip show $$name 2>/dev/null | sed -n 's/^Version: //p'); \
	  [ "$$have" = "$$want" ] || missing="$$missing $$spec"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing (PyPI$(if $(PIP_FLAGS), $(PIP_FLAGS))):$$missing"; \
	  $(PYTHON) -m pip install -q --disable-pip-version-check --root-user-action=ignore $(PIP_FLAGS) $$missing \
	    || $(PYTHON) -m pip install -q --disable-pip-version-check --root-user-action=ignore --break-system-packages $(PIP_FLAGS) $$missing; \
	fi

clean:
	rm -rf .build .build-static .build-* .test-output.log fuzz-findings
