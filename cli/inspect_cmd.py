"""``threadify inspect INPUT [--json] [--no-validate]``: what threadify sees in a module, and
its verdict (with the input validated as the transform validates it)."""

from __future__ import annotations

import json

from .files import read_input
from .options import INSPECT
from .parsing import option_flag, parse_or_exit, write_stdout


def main(argv: list[str]) -> None:
    """Print the report; exit 1 when the module would be rejected."""
    args = parse_or_exit(INSPECT, argv)
    from threadify.inspection import inspect

    report = inspect(read_input(args.input), args.validate)
    if args.json:
        text = json.dumps(report.as_dict(option_flag), indent=2, sort_keys=True)
    else:
        text = report.text(option_flag)
    write_stdout(text + "\n")
    if not report.accepted:
        raise SystemExit(1)
