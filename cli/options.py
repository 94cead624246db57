"""Every command's arguments and options, declared once.

Each command's arguments are a class whose annotated attributes *are* the option table: the
attribute's name is the keyword it sets (for the transform, the keyword of
:func:`threadify.transform`), its annotation is the value's type, and its value (a
:class:`Spec`, from :func:`option` or :func:`argument`) gives the flags, the default, the help
text and how to read the value. :mod:`threadify_cli.parsing` reads these tables to parse command
lines and to write ``--help``; nothing else lists options, so the parser, the help and the hints
that name a flag cannot disagree.

The shape is a dataclass's, without ``dataclasses``: these classes are built at every start-up,
and importing ``dataclasses`` alone costs ~6 ms (``threadify run`` otherwise never imports it).
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Literal, TypeVar

from threadify.abi import DEFAULT_STACK_SIZE
from threadify.host import DEFAULT_MAX_THREADS

#: How a value is read: ``text`` as given, ``size`` as bytes (``1MiB``), ``count`` as a whole
#: number >= 0, ``flag`` takes no value (present: True), ``list`` collects every occurrence.
Kind = Literal["text", "size", "count", "flag", "list"]

#: The default of an option that must be given.
REQUIRED: Any = object()


class Spec:
    """How one attribute of a command's arguments appears on the command line."""

    __slots__ = ("default", "flags", "help", "kind", "library", "metavar", "negatable", "rest")

    def __init__(self, flags: tuple[str, ...], help: str, *, default: Any = REQUIRED,
                 metavar: str = "", kind: Kind = "text", negatable: bool = False,
                 rest: bool = False, library: bool = False) -> None:
        #: ``("-o", "--output")``; empty for a positional argument.
        self.flags = flags
        self.help = help
        #: The value when the option is not given (:data:`REQUIRED`: it must be).
        self.default = default
        #: The value's placeholder in ``--help`` (``FILE``, ``SIZE``); the argument's name.
        self.metavar = metavar
        self.kind: Kind = kind
        #: A flag that also has a ``--no-`` form (to override an earlier one, e.g. in a script).
        self.negatable = negatable
        #: A positional argument that takes every remaining argument (and all after ``--``).
        self.rest = rest
        #: An option of the library (:class:`threadify.pipeline.Options`), passed on as it is.
        self.library = library

    @property
    def long(self) -> str:
        """The long flag (how hints and errors name the option)."""
        return next((f for f in self.flags if f.startswith("--")), self.flags[0])

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def option(*flags: str, help: str, default: Any = REQUIRED, metavar: str = "",
           kind: Kind = "text", negatable: bool = False, library: bool = False) -> Any:
    """An option (no ``default``: it must be given). Typed ``Any`` so that the attribute keeps
    its annotation's type, as with ``dataclasses.field``."""
    return Spec(flags, help, default=[] if kind == "list" else default, metavar=metavar,
                kind=kind, negatable=negatable, library=library)


def argument(metavar: str, help: str, *, rest: bool = False) -> Any:
    """A positional argument (``rest``: all remaining arguments, possibly none)."""
    return Spec((), help, default=[] if rest else REQUIRED, metavar=metavar,
                kind="list" if rest else "text", rest=rest)


class Arguments:
    """Base of the arguments classes: collects the table, and builds instances from it."""

    #: The table: attribute name -> :class:`Spec`, in declaration order.
    specs: ClassVar[dict[str, Spec]] = {}

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.specs = {name: value for name, value in vars(cls).items()
                     if isinstance(value, Spec)}

    def __init__(self, **values: Any) -> None:
        for name, spec in self.specs.items():
            if name in values:
                value = values.pop(name)
            elif spec.required:
                raise TypeError(f"{type(self).__name__}: {name} is required")
            else:
                value = list(spec.default) if isinstance(spec.default, list) else spec.default
            setattr(self, name, value)
        if values:
            raise TypeError(f"{type(self).__name__}: unknown {', '.join(sorted(values))}")

    def as_dict(self) -> dict[str, Any]:
        """Every attribute's value (for ``--json`` reports and tests)."""
        return {name: getattr(self, name) for name in self.specs}


def spec_of(cls: type[Arguments], name: str) -> Spec:
    """The :class:`Spec` of attribute ``name`` of the arguments class ``cls``."""
    try:
        return cls.specs[name]
    except KeyError:
        raise KeyError(f"{cls.__name__} has no option {name!r}") from None


class TransformArgs(Arguments):
    """``threadify INPUT -o OUTPUT [options]``.

    The options marked ``library`` are :func:`threadify.transform`'s keywords: same names, same
    defaults, values in the same units (a test holds them equal).
    """

    input: str = argument("INPUT", "Input .wasm file ('-' reads stdin).")
    output: str = option("-o", "--output", metavar="OUTPUT", help=(
        "Output file ('-' writes stdout). May equal the input; written only on success."))
    stack_size: int = option(
        "--stack-size", kind="size", metavar="SIZE", default=DEFAULT_STACK_SIZE, library=True,
        help="Stack size of every new thread: bytes, or with KiB/MiB/GiB; a multiple of 16.")
    max_memory: int | None = option(
        "--max-memory", kind="size", metavar="SIZE", default=None, library=True,
        help="Maximum memory (a multiple of 64KiB). Default: keep the input's, or 1GiB if it "
             "has none.")
    allow_non_atomic: bool = option(
        "--allow-non-atomic", kind="flag", negatable=True, default=False, library=True,
        help="Accept code compiled without atomics (its own memory accesses are not "
             "thread-safe).")
    validate: bool | None = option(
        "--validate", kind="flag", negatable=True, default=None, library=True,
        help="Validate the whole input (in parallel with the rewrite) and reject it if it is "
             "invalid. Default: inputs with up to 2MiB of code are validated (whatever their "
             "size); more code only with --validate (or --verify), because checking every "
             "function body then costs more than the rewrite.")
    stack_check: bool = option(
        "--stack-check", kind="flag", negatable=True, default=False, library=True,
        help="Add stack-limit checks: a thread that overflows its stack traps instead of "
             "overwriting memory (docs/stack-check.md).")
    verify: bool = option("--verify", kind="flag", negatable=True, default=False, help=(
        "Before writing the output, validate it and run it on the bundled host with several "
        "threads."))
    quiet: bool = option("-q", "--quiet", kind="flag", default=False,
                         help="Print nothing on success.")
    json_report: bool = option("--json", kind="flag", default=False, help=(
        "Print a JSON report of what changed (to stderr when -o -)."))


class InspectArgs(Arguments):
    """``threadify inspect INPUT [--json] [--no-validate]``."""

    input: str = argument("INPUT", "Input .wasm file ('-' reads stdin).")
    json: bool = option("--json", kind="flag", default=False, help="Machine-readable output.")
    validate: bool | None = option(
        "--validate", kind="flag", negatable=True, default=None,
        help="Validate the function bodies too (an invalid module is class D), as the "
             "transform does. Default: inputs with up to 2MiB of code.")


class RunArgs(Arguments):
    """``threadify run MODULE [options] [-- ARGS...]``."""

    module: str = argument("MODULE",
                           "The .wasm command module (plain, WASI-threads, or WASIX threads).")
    args: list[str] = argument("ARGS", "Arguments for the program (after --).", rest=True)
    dirs: list[str] = option("--dir", kind="list", metavar="HOST[::GUEST]", help=(
        "Give the program directory HOST, seen by it as GUEST (default: the same path). "
        "Repeatable."))
    env: list[str] = option("--env", kind="list", metavar="K[=V]", help=(
        "Set an environment variable for the program; a bare K passes on this process's "
        "value of K (nothing when it is unset). Repeatable."))
    max_threads: int = option("--max-threads", kind="count", metavar="N",
                              default=DEFAULT_MAX_THREADS, help=(
        "Spawned threads alive at once (one more: its spawn fails)."))


A = TypeVar("A", bound=Arguments)


class Command(Generic[A]):
    """A command: its arguments table and the words around it in ``--help``."""

    def __init__(self, *, prog: str, args: type[A], usage: str, summary: str,
                 examples: tuple[str, ...], notes: str = "", version: bool = False) -> None:
        self.prog = prog
        self.args = args
        self.usage = usage
        self.summary = summary
        self.examples = examples
        self.notes = notes
        #: ``--version`` is accepted (the transform, the default command).
        self.version = version


TRANSFORM = Command(
    prog="threadify",
    args=TransformArgs,
    usage="threadify INPUT -o OUTPUT [options]",
    summary="Make a wasm-ld WebAssembly module thread-ready for WASI-threads hosts.",
    examples=(
        "threadify app.wasm -o app.threads.wasm   # rewrite (a build step)",
        "threadify app.wasm -o out.wasm --verify   # rewrite, then prove it on the bundled host",
        "threadify app.wasm -o - --stack-size 256KiB > out.wasm      # smaller thread stacks",
        "threadify app.wasm -o out.wasm --max-memory 512MiB  # room for more threads",
        "threadify inspect app.wasm --json         # what threadify sees, and its verdict",
        "threadify run out.wasm --dir .::/work -- a   # run on the bundled WASI-threads host",
    ),
    notes=(
        "Input: wasm32 modules linked by wasm-ld from code compiled with -matomics "
        "-mbulk-memory, with or without --shared-memory. Already thread-ready modules (they "
        "export wasi_thread_start) are copied unchanged. A rejected input writes nothing and "
        "exits 1 with the reason and the fix. See docs/ for the ABI (how to spawn a thread) "
        "and recipes per compiler.\n"
        "Other commands: 'threadify inspect --help', 'threadify run --help'."),
    version=True,
)

INSPECT = Command(
    prog="threadify inspect",
    args=InspectArgs,
    usage="threadify inspect INPUT [--json] [--no-validate]",
    summary=(
        "Show what threadify sees in a module: memory, linker symbols (and how they were "
        "found), TLS, and the verdict: class A/B (will be rewritten), C (already thread-ready) "
        "or D (rejected, with the reason and the fix)."),
    examples=(
        "threadify inspect app.wasm",
        "threadify inspect app.wasm --json | jq .symbols",
    ),
    notes="Exit code: 0 when the module is accepted (A, B, C), 1 when it is rejected (D).",
)

RUN = Command(
    prog="threadify run",
    args=RunArgs,
    usage="threadify run MODULE [options] [-- ARGS...]",
    summary=(
        "Run a WASI command module on the bundled host: a plain one as it is, a threaded one "
        "(a shared memory and wasi.thread-spawn, or WASIX threads) with a new instance per "
        "thread. Options may come before or after MODULE; the program's own arguments "
        "follow --."),
    examples=(
        "threadify run out.wasm",
        "threadify run out.wasm --dir ./data::/data --env LANG=C --max-threads 64 -- input.txt -v",
    ),
    notes=(
        "Exit code: the program's proc_exit status (0 when _start returns); 134 after a trap "
        "(one line on stderr names the trap and the thread); 130 on Ctrl-C; 1 when the module "
        "cannot run here."),
)

