# Shortcuts for the scripts the README documents.
.PHONY: setup demo test lint format
format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .
setup:
	bash scripts/setup.sh
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
