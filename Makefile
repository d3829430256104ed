# kafka-kit: the two commands of the README are `make lab` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
BIN         := $(VENV)/bin
KAFKA_VERSION ?= 4.4.0
LAB_ARGS    ?=
export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export ANSIBLE_CONFIG  := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

APT_PACKAGES := podman runc debootstrap uidmap slirp4netns fuse-overlayfs containernetworking-plugins \
                netavark aardvark-dns iproute2 openssh-client maven openjdk-17-jdk-headless python3-venv \
                prometheus kcat

.PHONY: help deps apt venv dist image lab lab-up lab-deploy smoke bench bench-feed lab-example lab-rotation lab-quorum-move lab-screenshot lab-down test test-unit test-molecule test-cluster test-default-full test-default-rotation test-migration test-migration-rollback test-day2 test-day2-ci lint clean

help:
	@echo "make lab        build the lab hosts, deploy site.yml on them over SSH, run the smoke test"
	@echo "make test       unit tests, ansible-lint, Molecule scenarios (what .ci/run runs)"
	@echo "make lab-down   remove the lab's containers, network, key and inventory"
	@echo "make clean      lab-down, then remove the base image and caches"

# ---- installation (every step the project needs) ------------------------------------------
deps: apt venv dist image

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,torch,bench]'
	touch $@

venv: $(VENV)/.installed

dist:
	tools/build-kafka-dist $(KAFKA_VERSION)
	tools/build-kafka-dist 3.9.2
	# the previous 4.x release: the version-switch tests (molecule default) and upgrades
	tools/build-kafka-dist 4.3.1
	tools/fetch-jmx-exporter

image:
	tools/build-lab-image

# ---- the lab ------------------------------------------------------------------------------
lab: deps lab-up lab-deploy smoke

# LAB_SECURITY=plaintext: a lab without TLS and SASL (for the reference article's client code).
LAB_SECURITY ?= secure
lab-up:
	$(BIN)/ansible-playbook playbooks/lab_up.yml -e lab_monitoring=true -e lab_security_profile=$(LAB_SECURITY) $(LAB_ARGS)

lab-deploy:
	$(BIN)/ansible-playbook site.yml -i inventories/lab

smoke:
	$(BIN)/ansible-playbook playbooks/smoke.yml -i inventories/lab

# The article's table measured on a running lab (make lab): before (a 3-node cluster on Kafka's
# defaults, started on this host for the run, and the article's code) vs after (the lab, as
# admin over SASL_SSL when the lab is secure, and pyclient) vs Kafka's own tools, one run
# (benchmarks/bench_article.py, docs/benchmarks.md). BENCH_ARGS adds options.
BENCH_SERVERS ?= 10.89.60.11:9092,10.89.60.12:9092,10.89.60.13:9092
BENCH_CONFIG  ?= inventories/lab/.kafka-kit/clients/admin.properties
BENCH_ARGS    ?=
bench:
	$(PY) benchmarks/bench_article.py -b $(BENCH_SERVERS) --replication-factor 3 --partitions 12 \
	  $(if $(wildcard $(BENCH_CONFIG)),--command-config $(BENCH_CONFIG)) $(BENCH_ARGS)

# docs/pyclient.md's DDP training loop (train_ddp.py) run as written against a running secure
# lab: tests/pyclient/test_docs_example.py with the lab's client files (admin creates the
# topics, training-ingest produces, training-reader trains; --client-config as the docs say).
lab-example:
	KAFKA_KIT_EXAMPLE_LAB=inventories/lab/.kafka-kit/clients $(BIN)/pytest -q -p no:cacheprovider tests/pyclient/test_docs_example.py

# Certificate renewal and a kit CA rotation (start, switch, finish) on a running secure lab, with
# a producer and a consumer running (tests/security/test_lab_ca_rotation.py, docs/security.md).
# It changes the lab's CA; make test skips it.
lab-rotation:
	KAFKA_KIT_LAB_ROTATION=1 $(BIN)/pytest -q -s -p no:cacheprovider tests/security/test_lab_ca_rotation.py

# The training feed on a running secure lab (docs/pyclient.md, Benchmarks), two runs: the byte
# tokenizer (file vs Kafka, shuffle, three mixed topics, a training loop of 20 ms steps on a
# DataLoader of 2 workers), then a trained BPE (file vs Kafka at read, a pre-tokenized topic,
# tokenized ingest with 1 and 2 processes, DataLoader(2 workers) throughput); tables, JSON, PNG.
FEED_ARGS ?= --records 100000 --partitions 6 --repeat 3
FEED_COMMON = $(PY) benchmarks/bench_feed.py -b $(BENCH_SERVERS) --replication-factor 3 \
	  --command-config inventories/lab/.kafka-kit/clients/admin.properties --workers 2 $(FEED_ARGS)
bench-feed:
	$(FEED_COMMON) --shuffle --mix --step-ms 20 --prefetch --out .cache/bench/lab-feed-bytes
	$(FEED_COMMON) --train-bpe 8000 --pretokenized --step-ms 0 --out .cache/bench/lab-feed-bpe

# The Prometheus alerts page of a running lab as a PNG (docs/monitoring.md), headless Chromium.
# Debian's prometheus package serves the classic UI only: /classic/alerts (/alerts is a 404).
lab-screenshot:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	tools/prometheus-screenshot http://10.89.60.200:9090/classic/alerts docs/img/prometheus-alerts.png

# The static -> dynamic KRaft quorum move on the secure lab (docs/day2.md): the lab's hosts
# created anew, converged static, moved, smoke, a converge that changes nothing.
lab-quorum-move: deps
	tools/lab-quorum-move

lab-down:
	$(BIN)/ansible-playbook playbooks/lab_down.yml $(LAB_ARGS)

# ---- tests --------------------------------------------------------------------------------
test: deps test-unit lint test-molecule

# Two workers, a test file each at a time (--dist loadfile keeps a file's module fixtures on one
# worker; each worker starts its own session brokers): on the 2-core build machine 5 min 39 s
# instead of 10 min 39 s. More workers start more brokers (about 1 GiB each): UNIT_WORKERS=1 runs
# the suite serially.
UNIT_WORKERS ?= 2
test-unit:
	$(BIN)/pytest -q -n $(UNIT_WORKERS) --dist loadfile tests

lint:
	$(BIN)/ansible-lint --profile production

# Scenarios: default (3 combined KRaft hosts + rolling-change tests), os_tuning, cluster
# (10 brokers + 3 dedicated controllers over SSH), zookeeper (Kafka 3.9 + ZooKeeper ensemble).
# The ZooKeeper -> KRaft migration scenario (about 20 minutes) runs with `make test-migration`.
# A scenario that runs past MOLECULE_TIMEOUT seconds fails (timeout exits 124) instead of
# running into CI's limit; the next scenario's first step is its own destroy.
# The cluster scenario builds CLUSTER_BROKERS brokers (+ 3 controllers): 4 here, for CI's time;
# `make test-cluster` builds the production shape's 10.
MOLECULE_SCENARIOS ?= default os_tuning cluster zookeeper
MOLECULE_TIMEOUT   ?= 2400
CLUSTER_BROKERS    ?= 4
test-molecule:
	@for s in $(MOLECULE_SCENARIOS); do \
	  echo "== molecule test -s $$s"; \
	  CLUSTER_BROKERS=$(CLUSTER_BROKERS) tools/peak-mem timeout $(MOLECULE_TIMEOUT) $(BIN)/molecule test -s $$s || exit 1; \
	done

# The cluster scenario in the production shape: 10 brokers on 3 racks + 3 dedicated controllers
# (1079 s on 2026-12-07; make test's 4-broker run 544 s).
test-cluster: deps
	CLUSTER_BROKERS=10 tools/peak-mem $(BIN)/molecule test -s cluster

# The default scenario with its pending-restart tests (molecule/default/tests/
# test_pending_restarts.py: interrupted roll resumed, version switch only in the gated
# restart, --limit and preferred leaders), which make test skips for time.
test-default-full: deps
	DEFAULT_FULL=1 tools/peak-mem $(BIN)/molecule test -s default

test-migration: deps
	tools/peak-mem $(BIN)/molecule test -s migration

# The same scenario, rolled back after phase 3 (brokers on KRaft) to ZooKeeper mode.
test-migration-rollback: deps
	MIGRATION_PATH=rollback tools/peak-mem $(BIN)/molecule test -s migration

# The default scenario with the certificate renewal and kit CA rotation under traffic
# (molecule/default/tests/test_tls_rotation.py, reduced sequence): 1744 s on 2026-12-07, the
# rotation 1181 s of it; too long for make test's 60 minutes.
test-default-rotation: deps
	DEFAULT_ROTATION=1 tools/peak-mem $(BIN)/molecule test -s default

# Day-2 operations with traffic running (docs/day2.md): the full sequence of the day2 scenario
# (upgrade with a rollback, scale-out, rebalance, faults, drain): 76 min 2 s in a fresh clone,
# deps included, on 2026-12-08.
test-day2: deps
	DAY2_SEQUENCE=full tools/peak-mem $(BIN)/molecule test -s day2

# Its faults only (kill -9 of a partition leader, a full data disk) on the converged cluster:
# 583 s on 2026-12-07 (docs/day2.md); not in make test, which it would take past 60 minutes.
test-day2-ci: deps
	DAY2_SEQUENCE=ci tools/peak-mem $(BIN)/molecule test -s day2

clean: lab-down
	-podman image rm localhost/kafka-kit-base:bookworm
	rm -rf .cache
