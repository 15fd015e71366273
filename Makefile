# The two commands of the README: `make run` and `make test`. Both create .venv as needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench lint install messages clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	bin/run

test: install
	bin/test

bench: install
	bin/bench

lint: install
	$(VENV)/bin/ruff check .

messages: install
	cd $(CURDIR) && $(VENV)/bin/python manage.py makemessages -l zh_Hans -l en --ignore=.venv --ignore=var
	$(VENV)/bin/python manage.py compilemessages --ignore=.venv

clean:
	rm -rf var/celery var/cache var/static
