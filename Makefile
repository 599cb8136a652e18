# AriesOne: every target is a thin wrapper around a script in scripts/ (run them directly if you prefer).
#   make run       local services, migrations, demo tenant, then the server on http://127.0.0.1:8080
#   make test      local services, clean leftovers, every test of the workspace
#   make check     cargo fmt --check + clippy -D warnings
#   make fmt       cargo fmt --all
#   make bench     issue 9's scenarios (a)-(f), each beside its ceiling (bare actix, pgbench), on loopback (docs/BENCHMARKS.md)
#   make fuzz      schemathesis against /openapi.json of a throwaway server: no 5xx, every answer as documented (docs/FUZZING.md)
#   make services  only ensure Postgres, Redis, RabbitMQ and the database roles/databases
#   make chaos     faults under steady load (RabbitMQ, Redis, a shard's Postgres, an actor panic, kill -9),
#                  then every acknowledged write checked present once and its event delivered (docs/CHAOS.md)

SHELL := /bin/bash

.PHONY: run test check fmt bench fuzz chaos services

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

check:
	bash scripts/check.sh

fmt:
	cargo fmt --all

bench:
	bash scripts/bench.sh

fuzz:
	bash scripts/fuzz.sh

services:
	bash scripts/services.sh

chaos:
	bash scripts/chaos.sh
