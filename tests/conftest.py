"""Session fixtures: one real local stack (Kafka, Postgres, Redis, Triton) for the run."""

from __future__ import annotations

import shutil

import pytest

from tests.stack_support import isolated_settings, make_state_dir, running_stack


@pytest.fixture(scope="session")
def stack_settings():
    """Settings of a running, migrated local stack on free ports, torn down at the end."""
    state_dir = make_state_dir()
    try:
        with running_stack(isolated_settings(state_dir)) as settings:
            yield settings
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def cli(stack_settings, capsys):
    """Runs `alphafactory ARGS...` in process; returns (exit code, stdout, stderr)."""
    from app.cli.main import build_parser

    def run(*argv: str, settings=stack_settings) -> tuple[int, str, str]:
        args = build_parser().parse_args(list(argv))
        code = args.handler(args, settings)
        out, err = capsys.readouterr()
        return code, out, err

    return run
