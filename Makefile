# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-scale bench-webhooks bench-auto-reply clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "outreach needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/outreach demo

lint: $(STAMP)
	$(BIN)/ruff check outreach workers tests bench
	$(BIN)/ruff format --check outreach workers tests bench
	$(BIN)/mypy outreach workers

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.pipeline

bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale

bench-webhooks: $(STAMP)
	$(BIN)/python -m bench.webhooks

bench-auto-reply: $(STAMP)
	$(BIN)/python -m bench.auto_reply

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
