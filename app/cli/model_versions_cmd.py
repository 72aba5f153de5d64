"""`alphafactory model list | promote VERSION | rollback`: the generator's versions.

``list`` shows every registered version (its cutoff, what it trained on, whether it is
served, promoted or withdrawn) and how many requests each wrote candidates for;
``promote`` rolls a version out (requests decided after its cutoff use it); ``rollback``
withdraws the promoted version for good and promotes the one promoted before it.
``--generator NAME`` picks a strategy's own generator ("" the default).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphafactory.settings import Settings


def register(model_actions) -> None:
    listing = model_actions.add_parser("list", help="the generator's registered versions")
    listing.add_argument("--generator", default=None, help="one generator (default: all)")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=run_list)
    promote = model_actions.add_parser("promote", help="roll a generator version out")
    promote.add_argument("version", type=int, metavar="VERSION")
    promote.add_argument("--generator", default="", help="the generator (default: the default)")
    promote.add_argument("--reason", default="", help="kept with the rollout")
    promote.set_defaults(handler=run_promote)
    rollback = model_actions.add_parser(
        "rollback", help="withdraw the promoted version, promote the one before it"
    )
    rollback.add_argument("--generator", default="", help="the generator (default: the default)")
    rollback.add_argument("--reason", default="", help="kept with the rollout")
    rollback.set_defaults(handler=run_rollback)


def _connect(settings: Settings):
    from storage.db import connect

    return connect(settings.postgres.dsn("app"), autocommit=True)


def run_list(args, settings: Settings) -> int:
    from storage.models import list_versions, promoted_version, requests_per_version

    with _connect(settings) as conn:
        versions = list_versions(conn, args.generator)
        names = sorted({v.generator for v in versions})
        promoted = {name: promoted_version(conn, name) for name in names}
        used = requests_per_version(conn)
    rows = [
        {
            "generator": v.generator,
            "version": v.version,
            "cutoff": v.cutoff.isoformat(),
            "trained_until": v.trained_until.isoformat(),
            "strategy_id": v.strategy_id,
            "served_model": v.served_model,
            "state": _state(v, promoted.get(v.generator)),
            "requests": used.get((v.generator, v.version), 0),
            "trajectories": v.training.get("trajectories"),
            "checkpoint": v.checkpoint,
        }
        for v in versions
    ]
    if args.json:
        print(json.dumps({"versions": rows}, indent=1))
        return 0
    if not rows:
        print(
            "no generator version is registered (the trainer and `model train --register` add them)"
        )
        return 0
    print(f"{'generator':12s} {'ver':>4s} {'cutoff':10s} {'state':10s} {'requests':>8s}  strategy")
    for row in rows:
        print(
            f"{row['generator'] or 'default':12s} {row['version']:4d} {row['cutoff'][:10]:10s} "
            f"{row['state']:10s} {row['requests']:8d}  {row['strategy_id']}"
        )
    return 0


def _state(version, promoted: int | None) -> str:
    if version.withdrawn_at is not None:
        return "withdrawn"
    if version.ready_at is None:
        return "exporting"
    return "promoted" if version.version == promoted else "ready"


def run_promote(args, settings: Settings) -> int:
    from storage.models import RegistryError, promote

    try:
        with _connect(settings) as conn:
            promote(conn, args.generator, args.version, args.reason or "promoted by hand")
    except RegistryError as error:
        return _fail(str(error))
    print(f"promoted {args.generator or 'default'} v{args.version}")
    return 0


def run_rollback(args, settings: Settings) -> int:
    from storage.models import RegistryError, rollback

    try:
        with _connect(settings) as conn:
            withdrawn, promoted = rollback(conn, args.generator, args.reason)
    except RegistryError as error:
        return _fail(str(error))
    name = args.generator or "default"
    print(f"withdrew {name} v{withdrawn}; promoted {name} v{promoted}")
    return 0


def _fail(message: str) -> int:
    import sys

    print(f"alphafactory: {message}", file=sys.stderr)
    return 2
