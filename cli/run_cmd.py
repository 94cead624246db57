"""``threadify run``: execute a WASI-threads module on the bundled host.

The run happens in this process and ends it with the program's exit code (see
``threadify.host.termination``). Start-up matters for a command people put in loops, and
importing typer alone costs about as much as importing wasmtime, so :func:`main` parses the
documented syntax by hand and only builds the typer app for ``--help`` or anything unusual; both
paths accept exactly the same command lines.
"""


import sys
from typing import Annotated, Any, NoReturn, Optional

HELP = """Run a WASI-threads command module (shared memory + wasi.thread-spawn).

Options may come before or after MODULE; the program's own arguments follow `--`.

Example:

    threadify run out.wasm --dir ./data::/data --env LANG=C --max-threads 64 -- input.txt -v

Exit code: the program's proc_exit status (0 when _start returns); 134 after a trap \
(one line on stderr names the trap and the thread); 130 on Ctrl-C; 1 when the module \
cannot run here.
"""

def _execute(module: str, args: list[str], dirs: list[str], env: list[str],
             max_threads: int) -> NoReturn:
    from threadify.errors import ThreadifyError

    try:
        from threadify.host.program import execute, parse_env

        execute(module, args, dirs, parse_env(env), max_threads)
    except ThreadifyError as exc:
        sys.stderr.write(f"threadify run: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        sys.stderr.write("threadify run: interrupted\n")
        raise SystemExit(130) from None


def _build_app() -> Any:
    """The typer app (built on first use: importing typer costs ~60 ms of start-up)."""
    import typer

    app = typer.Typer(add_completion=False,
                      context_settings={"help_option_names": ["-h", "--help"]})

    @app.command(help=HELP, no_args_is_help=True)
    def run(
        module: Annotated[str, typer.Argument(metavar="MODULE", help="The .wasm module.")],
        args: Annotated[Optional[list[str]], typer.Argument(  # noqa: UP045 - typer needs it
            metavar="[-- ARGS...]", help="Arguments for the program (after `--`).")] = None,
        dirs: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
            "--dir", metavar="HOST[::GUEST]",
            help="Preopen directory HOST, seen by the program as GUEST.")] = None,
        env: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
            "--env", metavar="K=V", help="Set an environment variable for the program.")] = None,
        max_threads: Annotated[int, typer.Option(
            "--max-threads", min=0, metavar="N",
            help="Spawned threads alive at once (more: spawn fails).")] = 128,
    ) -> None:
        _execute(module, list(args or []), list(dirs or []), list(env or []), max_threads)

    return app


def __getattr__(name: str) -> Any:
    # PEP 562: `run_cmd.app` is the typer app, created (and typer imported) only when asked for.
    if name == "app":
        app = _build_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)


def _fast_parse(argv: list[str]) -> tuple[str, list[str], list[str], list[str], int] | None:
    """The documented syntax, or ``None`` to let typer handle (and explain) the command line."""
    module: str | None = None
    dirs: list[str] = []
    env: list[str] = []
    max_threads = 128
    extra: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            extra.extend(argv[i + 1:])
            break
        name, eq, value = arg.partition("=")
        if name in ("--dir", "--env", "--max-threads"):
            if not eq:
                if i + 1 >= len(argv):
                    return None
                value = argv[i + 1]
                i += 1
            if name == "--dir":
                dirs.append(value)
            elif name == "--env":
                env.append(value)
            else:
                try:
                    max_threads = int(value)
                except ValueError:
                    return None
                if max_threads < 0:
                    return None
        elif arg.startswith("-") and arg != "-":
            return None
        elif module is None:
            module = arg
        else:
            extra.append(arg)
        i += 1
    if module is None:
        return None
    return module, extra, dirs, env, max_threads


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point for ``threadify run ARGV...``: never returns."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parsed = _fast_parse(argv)
    if parsed is None:
        _build_app()(args=argv, prog_name="threadify run")
        raise SystemExit(0)
    module, extra, dirs, env, max_threads = parsed
    _execute(module, extra, dirs, env, max_threads)


if __name__ == "__main__":
    main()
