"""`alphafactory demo`: the main job on the bundled defaults.

For now it brings the local stack up, shows every component healthy and takes the
stack down again; the event pipeline issue replaces the middle with a live replay.
"""

from __future__ import annotations

import sys

from alphafactory.cli.stack_cmd import print_status
from alphafactory.settings import Settings


def register(commands) -> None:
    parser = commands.add_parser("demo", help="run the main job on the bundled defaults")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the stack up afterwards")
    parser.set_defaults(handler=run)


def run(args, settings: Settings) -> int:
    from deploy.local import stack

    print("bringing the local stack up ...")
    try:
        stack.up(settings)
    except stack.StackError as error:
        print(f"alphafactory: {error}", file=sys.stderr)
        return 1
    try:
        code = print_status(stack.status(settings), as_json=False)
    finally:
        if not args.keep_running:
            stopped = stack.down(settings)
            print(f"stack down: stopped {', '.join(stopped)}")
    return code
