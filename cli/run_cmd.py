"""``threadify run MODULE [options] [-- ARGS...]``: a WASI-threads module on the bundled host.

The run happens in this process and ends it with the program's exit code (see
``threadify.host.termination``). Start-up matters for a command people put in loops: parsing
imports nothing beyond the standard library's basics.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

from .options import RUN, RunArgs, spec_of
from .parsing import fail, option_flag, parse_or_exit

if TYPE_CHECKING:
    from threadify.errors import Suggestion


def run_flag(suggestion: Suggestion) -> str:
    """An option a hint suggests, as ``threadify run`` spells it (``--max-threads``), or as the
    transform does for the transform's own options; never a library keyword."""
    if suggestion.option in RunArgs.specs:
        spec = spec_of(RunArgs, suggestion.option)
        return spec.long if suggestion.value is None else f"{spec.long} {suggestion.value}"
    return option_flag(suggestion)


def execute(args: RunArgs) -> NoReturn:
    """Run the program; a module that cannot run here is one line (and a hint), exit 1."""
    from threadify.errors import ThreadifyError
    from threadify.host.sandbox import Preopen

    try:
        dirs = [Preopen.parse(spec) for spec in args.dirs]
    except ThreadifyError as exc:
        fail(exc.problem, "write --dir HOST[::GUEST]", RUN.prog)
    try:
        from threadify.host.program import execute as run_program
        from threadify.host.program import parse_env

        run_program(args.module, args.args, dirs, parse_env(args.env), args.max_threads)
    except ThreadifyError as exc:
        fail(exc.problem, exc.fix_for(run_flag), RUN.prog)
    except KeyboardInterrupt:
        sys.stderr.write("threadify run: interrupted\n")
        raise SystemExit(130) from None


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point for ``threadify run ARGV...``: never returns."""
    execute(parse_or_exit(RUN, list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
