"""Every command's arguments and options, declared once.

Each command's arguments are a dataclass whose fields *are* the option table: the field's name
is the keyword it sets (for the transform, the keyword of :func:`threadify.transform`), its
type and default are the value's, and its metadata (:class:`Spec`) gives the flags, the help
text and how to read the value. :mod:`threadify_cli.parsing` reads these tables to parse command
lines and to write ``--help``; nothing else lists options, so the parser, the help and the
hints that name a flag cannot disagree.

These classes are built at every start-up, so they skip the generated ``__eq__`` and
``__repr__`` (nothing compares or prints them, and each generated method costs start-up time),
and annotations are evaluated eagerly (dataclasses read string annotations more slowly).
"""

from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from threadify.abi import DEFAULT_STACK_SIZE
from threadify.host import DEFAULT_MAX_THREADS

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: How a value is read: ``text`` as given, ``size`` as bytes (``1MiB``), ``count`` as a whole
#: number >= 0, ``flag`` takes no value (present: True), ``list`` collects every occurrence.
Kind = Literal["text", "size", "count", "flag", "list"]


@dataclass(eq=False, repr=False)
class Spec:
    """How one field of a command's arguments appears on the command line."""

    #: ``("-o", "--output")``; empty for a positional argument.
    flags: tuple[str, ...]
    help: str
    #: The value's placeholder in ``--help`` (``FILE``, ``SIZE``); the argument's name.
    metavar: str = ""
    kind: Kind = "text"
    #: A flag that also has a ``--no-`` form (to override an earlier one, e.g. in a script).
    negatable: bool = False
    #: A positional argument that takes every remaining argument (and all after ``--``).
    rest: bool = False

    @property
    def long(self) -> str:
        """The long flag (how hints and errors name the option)."""
        return next((f for f in self.flags if f.startswith("--")), self.flags[0])


def option(*flags: str, help: str, default: Any = MISSING, metavar: str = "",
           kind: Kind = "text", negatable: bool = False) -> Any:
    """A dataclass field for an option (no ``default``: the option is required)."""
    spec = Spec(flags, help, metavar, kind, negatable)
    if kind == "list":
        return field(default_factory=list, metadata={"cli": spec})
    return field(default=default, metadata={"cli": spec})


def argument(metavar: str, help: str, *, rest: bool = False) -> Any:
    """A dataclass field for a positional argument (``rest``: all remaining arguments)."""
    spec = Spec((), help, metavar, "list" if rest else "text", rest=rest)
    if rest:
        return field(default_factory=list, metadata={"cli": spec})
    return field(metadata={"cli": spec})


def spec_of(cls: "type[DataclassInstance]", name: str) -> Spec:
    """The :class:`Spec` of field ``name`` of the arguments class ``cls``."""
    for item in fields(cls):
        if item.name == name:
            spec: Spec = item.metadata["cli"]
            return spec
    raise KeyError(f"{cls.__name__} has no option {name!r}")


@dataclass(eq=False, repr=False)
class TransformArgs:
    """``threadify INPUT -o OUTPUT [options]``.

    The options from ``stack_size`` to ``stack_check`` are the library's
    (:func:`threadify.transform`): same names, same defaults, values in the same units.
    """

    input: str = argument("INPUT", "Input .wasm file ('-' reads stdin).")
    output: str = option("-o", "--output", metavar="OUTPUT", help=(
        "Output file ('-' writes stdout). May equal the input; written only on success."))
    stack_size: int = option("--stack-size", kind="size", metavar="SIZE",
                             default=DEFAULT_STACK_SIZE, help=(
        "Stack size of every new thread: bytes, or with KiB/MiB/GiB; a multiple of 16."))
    max_memory: int | None = option("--max-memory", kind="size", metavar="SIZE", default=None,
                                    help=(
        "Maximum memory (a multiple of 64KiB). Default: keep the input's, or 1GiB if it has "
        "none."))
    allow_non_atomic: bool = option("--allow-non-atomic", kind="flag", negatable=True,
                                    default=False, help=(
        "Accept code compiled without atomics (its own memory accesses are not thread-safe)."))
    validate: bool | None = option("--validate", kind="flag", negatable=True, default=None,
                                   help=(
        "Validate the whole input (in parallel with the rewrite) and reject it if it is "
        "invalid. Default: inputs up to 16MiB are validated; larger ones only with --validate "
        "(or --verify), because checking every function body costs more than the rewrite."))
    stack_check: bool = option("--stack-check", kind="flag", negatable=True, default=False,
                               help=(
        "Add stack-limit checks: a thread that overflows its stack traps instead of "
        "overwriting memory (docs/stack-check.md)."))
    verify: bool = option("--verify", kind="flag", negatable=True, default=False, help=(
        "Before writing the output, validate it and run it on the bundled host with several "
        "threads."))
    quiet: bool = option("-q", "--quiet", kind="flag", default=False,
                         help="Print nothing on success.")
    json_report: bool = option("--json", kind="flag", default=False, help=(
        "Print a JSON report of what changed (to stderr when -o -)."))


@dataclass(eq=False, repr=False)
class InspectArgs:
    """``threadify inspect INPUT [--json]``."""

    input: str = argument("INPUT", "Input .wasm file ('-' reads stdin).")
    json: bool = option("--json", kind="flag", default=False, help="Machine-readable output.")


@dataclass(eq=False, repr=False)
class RunArgs:
    """``threadify run MODULE [options] [-- ARGS...]``."""

    module: str = argument("MODULE", "The .wasm module (thread-ready: a threadify output).")
    args: list[str] = argument("ARGS", "Arguments for the program (after --).", rest=True)
    dirs: list[str] = option("--dir", kind="list", metavar="HOST[::GUEST]", help=(
        "Give the program directory HOST, seen by it as GUEST (default: the same path). "
        "Repeatable."))
    env: list[str] = option("--env", kind="list", metavar="K=V", help=(
        "Set an environment variable for the program. Repeatable."))
    max_threads: int = option("--max-threads", kind="count", metavar="N",
                              default=DEFAULT_MAX_THREADS, help=(
        "Spawned threads alive at once (one more: its spawn fails)."))


A = TypeVar("A", bound="DataclassInstance")


@dataclass(eq=False, repr=False)
class Command(Generic[A]):
    """A command: its arguments table and the words around it in ``--help``."""

    prog: str
    args: type[A]
    usage: str
    summary: str
    examples: tuple[str, ...]
    notes: str = ""
    #: ``--version`` is accepted (the transform, the default command).
    version: bool = False


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
    usage="threadify inspect INPUT [--json]",
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
        "Run a WASI-threads command module (shared memory + wasi.thread-spawn) on the bundled "
        "host. Options may come before or after MODULE; the program's own arguments follow --."),
    examples=(
        "threadify run out.wasm",
        "threadify run out.wasm --dir ./data::/data --env LANG=C --max-threads 64 -- input.txt -v",
    ),
    notes=(
        "Exit code: the program's proc_exit status (0 when _start returns); 134 after a trap "
        "(one line on stderr names the trap and the thread); 130 on Ctrl-C; 1 when the module "
        "cannot run here."),
)

