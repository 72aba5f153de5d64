"""`alphafactory db migrate`: create the roles and database, apply pending migrations."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphafactory.settings import Settings


def register(commands) -> None:
    parser = commands.add_parser("db", help="database administration")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate = actions.add_parser("migrate", help="bootstrap roles and apply the schema")
    migrate.set_defaults(handler=run_migrate)


def run_migrate(args, settings: Settings) -> int:
    from storage.admin import prepare_database
    from storage.errors import StorageError

    try:
        applied = prepare_database(settings.postgres)
    except StorageError as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 1
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    return 0
