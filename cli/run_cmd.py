"""``threadify run MODULE [options] [-- ARGS...]``: a WASI-threads module on the bundled host.

The run happens in this process and ends it with the program's exit code (see
``threadify.host.termination``). Start-up matters for a command people put in loops: parsing
imports nothing beyond the standard library's basics.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from .options import RUN, RunArgs
from .parsing import fail, parse_or_exit


def execute(args: RunArgs) -> NoReturn:
    """Run the program; a module that cannot run here is one line (and a hint), exit 1."""
    from threadify.errors import ThreadifyError
    from threadify.host.sandbox import Preopen

    try:
        dirs = [Preopen.parse(spec) for spec in args.dirs]
    except ValueError as exc:
        fail(str(exc), "write --dir HOST[::GUEST]", RUN.prog)
    try:
        from threadify.host.program import execute as run_program
        from threadify.host.program import parse_env

        run_program(args.module, args.args, dirs, parse_env(args.env), args.max_threads)
    except ThreadifyError as exc:
        fail(exc.problem, exc.fix, RUN.prog)
    except KeyboardInterrupt:
        sys.stderr.write("threadify run: interrupted\n")
        raise SystemExit(130) from None


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point for ``threadify run ARGV...``: never returns."""
    execute(parse_or_exit(RUN, list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
