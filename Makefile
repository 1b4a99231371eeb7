# Signal S3 destination: install, test, run locally. GNU make; needs only python3 on a fresh machine.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help install redis-bin rabbitmq-bin postgres-bin chromium-bin systemd-bin promtool-bin wrk-bin test unit integration \
	deploy-checks run flower flower-auth bench lint format clean

help:
	@echo "make install      create $(VENV) and install the project with its test extras"
	@echo "make test         the lint, then all tests (installs redis-server, rabbitmq-server, postgresql, chromium, systemd's"
	@echo "                  systemd-analyze and prometheus's promtool first if missing, as root)"
	@echo "make unit         tests/unit only"
	@echo "make deploy-checks tests/deploy only (compose, Kubernetes, systemd files, alert rules)"
	@echo "make integration  tests/integration only (real redis-server, rabbitmq-server, moto_server, celery, chromium)"
	@echo "make run          run the fleet locally against moto S3 (RUN_SECONDS=N to stop after N seconds)"
	@echo "make flower       Flower on 127.0.0.1:\$${FLOWER_PORT:-5555}; requires FLOWER_BASIC_AUTH=user:password"
	@echo "make bench        benchmarks: the product next to this machine's limits (BENCH_QUICK=1: ~3 minutes)"
	@echo "make lint         ruff check and ruff format --check (fails on a finding)"
	@echo "make format       ruff format and ruff check --fix"
	@echo "make clean        remove $(VENV) and caches"

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP)

# The tests and `make run` start their own redis-server on a free loopback port: they need the binary, not a service.
redis-bin:
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "redis-server not found: installing Debian's redis-server package"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null || exit 1; \
	  else \
	    echo "error: redis-server is not on PATH." >&2; \
	    echo "The tests and 'make run' start their own redis-server on a free 127.0.0.1 port, so they need the binary." >&2; \
	    echo "Install it, e.g. 'sudo apt-get install redis-server' (Debian/Ubuntu) or 'brew install redis' (macOS)," >&2; \
	    echo "or run 'make test' as root on Debian/Ubuntu to have it installed." >&2; \
	    exit 1; \
	  fi; \
	fi

# The tests of the scaled topology start their own RabbitMQ node (its own name, ports, directories and Erlang cookie)
# from Debian's rabbitmq-server package: they need its files, never the machine's RabbitMQ service.
RABBITMQ_BIN ?= /usr/lib/rabbitmq/bin
export RABBITMQ_BIN
rabbitmq-bin:
	@if [ ! -x "$(RABBITMQ_BIN)/rabbitmq-server" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "rabbitmq-server not found: installing Debian's rabbitmq-server package"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null || exit 1; \
	  else \
	    echo "error: $(RABBITMQ_BIN)/rabbitmq-server is not installed." >&2; \
	    echo "The tests of the scaled topology start their own RabbitMQ node on free 127.0.0.1 ports." >&2; \
	    echo "Install it, e.g. 'sudo apt-get install rabbitmq-server', set RABBITMQ_BIN to its directory," >&2; \
	    echo "or run 'make test' as root on Debian/Ubuntu to have it installed." >&2; \
	    exit 1; \
	  fi; \
	fi

# The Iceberg tests start their own PostgreSQL server (a SQL catalog) on a free 127.0.0.1 port, from Debian's
# postgresql package: they need its binaries (initdb, postgres), never the machine's PostgreSQL service.
POSTGRES_BIN ?= $(shell ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
postgres-bin:
	@if [ -z "$(POSTGRES_BIN)" ] || [ ! -x "$(POSTGRES_BIN)/initdb" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "PostgreSQL not found: installing Debian's postgresql package"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null || exit 1; \
	  else \
	    echo "error: PostgreSQL's initdb is not installed (looked in /usr/lib/postgresql/*/bin)." >&2; \
	    echo "The Iceberg tests start their own PostgreSQL server on a free 127.0.0.1 port." >&2; \
	    echo "Install it, e.g. 'sudo apt-get install postgresql', set POSTGRES_BIN to its bin directory," >&2; \
	    echo "or run 'make test' as root on Debian/Ubuntu to have it installed." >&2; \
	    exit 1; \
	  fi; \
	fi

# The browser tests drive Debian's Chromium with Playwright (never a downloaded browser).
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
chromium-bin:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "chromium not found: installing Debian's chromium package"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null || exit 1; \
	  else \
	    echo "error: $(CHROMIUM) is not installed." >&2; \
	    echo "The browser tests drive Chromium with Playwright. Install it, e.g. 'sudo apt-get install chromium'," >&2; \
	    echo "set CHROMIUM=/path/to/chromium, or run 'make test' as root on Debian/Ubuntu to have it installed." >&2; \
	    exit 1; \
	  fi; \
	fi

test: lint redis-bin rabbitmq-bin postgres-bin chromium-bin systemd-bin promtool-bin
	$(VENV)/bin/pytest $(PYTEST_ARGS)

unit: install
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

deploy-checks: install systemd-bin promtool-bin
	$(VENV)/bin/pytest tests/deploy $(PYTEST_ARGS)

integration: install redis-bin rabbitmq-bin postgres-bin chromium-bin
	$(VENV)/bin/pytest tests/integration $(PYTEST_ARGS)

run: install redis-bin
	$(PYTHON) -m workers.localrun

flower: flower-auth install
	$(VENV)/bin/celery -A workers.app flower --address=127.0.0.1 --port=$${FLOWER_PORT:-5555} --basic-auth=$$FLOWER_BASIC_AUTH --max_tasks=10000

# Flower shows task arguments and can shut workers down: never without authentication.
flower-auth:
	@case "$$FLOWER_BASIC_AUTH" in \
	  ?*:?*) ;; \
	  *) echo "error: refusing to start Flower without authentication." >&2; \
	     echo "Set FLOWER_BASIC_AUTH=user:password, e.g. FLOWER_BASIC_AUTH=admin:\$$(openssl rand -hex 12) make flower" >&2; \
	     exit 1;; \
	esac

# The check of the systemd units runs systemd-analyze verify (Debian's systemd package; no systemd needs to run).
systemd-bin:
	@if ! command -v systemd-analyze >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "systemd-analyze not found: installing Debian's systemd package"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null || exit 1; \
	  else \
	    echo "error: systemd-analyze is not on PATH. The deployment checks verify the systemd units with it." >&2; \
	    echo "Install it, e.g. 'sudo apt-get install systemd', or run 'make test' as root on Debian/Ubuntu." >&2; \
	    exit 1; \
	  fi; \
	fi

# The alert rules of deploy/prometheus are checked and unit-tested with promtool, from Debian's prometheus package
# (no Prometheus needs to run; on a host with systemd the package also enables its own prometheus service).
promtool-bin:
	@if ! command -v promtool >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "promtool not found: installing Debian's prometheus package"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null || exit 1; \
	  else \
	    echo "error: promtool is not on PATH. The deployment checks test the alert rules with it." >&2; \
	    echo "Install it, e.g. 'sudo apt-get install prometheus' (Debian/Ubuntu) or 'brew install prometheus' (macOS)," >&2; \
	    echo "or run 'make test' as root on Debian/Ubuntu to have it installed." >&2; \
	    exit 1; \
	  fi; \
	fi

# The bench loads the HTTP API with wrk on loopback.
wrk-bin:
	@if ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "wrk not found: installing Debian's wrk package"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null || exit 1; \
	  else \
	    echo "error: wrk is not on PATH. make bench loads the HTTP API with it." >&2; \
	    echo "Install it, e.g. 'sudo apt-get install wrk' (Debian/Ubuntu) or 'brew install wrk' (macOS)," >&2; \
	    echo "or run 'make bench' as root on Debian/Ubuntu to have it installed." >&2; \
	    exit 1; \
	  fi; \
	fi

bench: install redis-bin wrk-bin
	$(PYTHON) -m bench

LINTED := workers tasks tests bench

lint: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

format: install
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
