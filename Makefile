# Set-up and entry points. `make up` and `make test` install whatever is missing first.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
APT_PACKAGES := git redis-server runc python3 python3-venv curl ca-certificates procps skopeo umoci debootstrap \
  chromium chromium-driver openssh-client
# Programs the Node.js buildpack uses from the stack; a node that ships its own npm
# (NodeSource's) must not get Debian's npm package on top, so these go by command.
APT_COMMANDS := node:nodejs npm:npm
STAMP := $(VENV)/.installed

.PHONY: install apt venv up test lint bench clean

install: apt venv

# Debian packages the platform and its tests run: only those missing are installed.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	for pair in $(APT_COMMANDS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing packages:$$missing; run make install as root" >&2; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

up: install
	$(VENV)/bin/paas up

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

lint: venv
	$(VENV)/bin/ruff check .

bench: install
	$(VENV)/bin/python bench/deploy.py

clean:
	rm -rf $(VENV) build *.egg-info
