"""Which toolchain made a module, when it is not one whose output threadify can rewrite.

threadify rewrites wasm-ld's conventions (docs/inputs.md). Two kinds of module look close enough
to pass some of its checks and then fail late with a misleading message, so they are recognised
first and rejected with a message that names what they are:

* **wasm-bindgen's threads transform** has already run: the module exports
  ``__wbindgen_thread_destroy`` or ``__stack_alloc``. A module that still carries wasm-bindgen's
  ``__wasm_bindgen_unstable`` section is meant for wasm-bindgen (and its JavaScript glue) too.
* **another toolchain** linked it — Go, Emscripten, AssemblyScript: named from the ``producers``
  section (``language`` / ``processed-by`` / ``sdk``), or, for toolchains that write none, from
  the runtime names they always leave (Emscripten's ``emscripten_*`` imports and exports or
  its ``stackSave``/``stackRestore``/``stackAlloc`` exports; AssemblyScript's ``env.abort``
  import and the ``~lib/`` paths of its standard library).
"""

from __future__ import annotations

from dataclasses import dataclass

from threadify.errors import ThreadifyError
from threadify.wasm import I32, ExternKind, FuncType, Module, Producers

#: Exports that wasm-bindgen's threads transform adds.
WASM_BINDGEN_EXPORTS = ("__wbindgen_thread_destroy", "__stack_alloc")
#: The custom section wasm-bindgen's macros leave for the wasm-bindgen CLI.
WASM_BINDGEN_SECTION = "__wasm_bindgen_unstable"

#: What to do instead, per toolchain: only advice that can work (no threadify option helps).
_ELSEWHERE = ("threadify rewrites wasm-ld's stack pointer and TLS; for threads on a WASI-threads "
              "host, build that code with C, C++, Rust or Zig and link it with wasm-ld")
ADVICE = {
    "Go": _ELSEWHERE,
    "Emscripten": "use Emscripten's own threads (-pthread) for its JavaScript runtime; for "
                  "WASI-threads hosts, build with clang and wasm-ld instead (docs/recipes-c.md)",
    "AssemblyScript": _ELSEWHERE,
}

#: Emscripten's stack helpers (3.1 exports them from every module, standalone ones included).
_EMSCRIPTEN_STACK_EXPORTS = frozenset({"stackSave", "stackRestore", "stackAlloc"})
#: The AssemblyScript standard library's source paths, in the UTF-16 its strings use.
_ASC_LIB_PATH = "~lib/".encode("utf-16-le")


@dataclass(frozen=True)
class Producer:
    """A toolchain threadify does not rewrite, and how it was recognised."""

    name: str  #: "Go", "Emscripten" or "AssemblyScript"
    version: str | None
    evidence: str  #: e.g. "its producers section says so"

    def describe(self) -> str:
        return self.name if not self.version else f"{self.name} {self.version.removeprefix('go')}"


def wasm_bindgen_evidence(module: Module) -> str | None:
    """Why ``module`` is wasm-bindgen's (its export or section), or ``None``."""
    for export in module.exports:
        if export.name in WASM_BINDGEN_EXPORTS:
            return f"it exports '{export.name}'"
    if module.get_custom(WASM_BINDGEN_SECTION) is not None:
        return f"it carries wasm-bindgen's '{WASM_BINDGEN_SECTION}' section"
    return None


def foreign_producer(module: Module) -> Producer | None:
    """The toolchain that made ``module`` when it is Go, Emscripten or AssemblyScript."""
    return _from_producers(module) or _emscripten_shape(module) or _assemblyscript_shape(module)


def _from_producers(module: Module) -> Producer | None:
    payload = module.get_custom("producers")
    if payload is None:
        return None
    try:
        fields = Producers.decode(payload).fields
    except ThreadifyError:  # a malformed producers section says nothing
        return None
    for field_name in ("language", "processed-by", "sdk"):
        for name, version in fields.get(field_name, []):
            for toolchain in ADVICE:
                if name == toolchain or name.startswith(toolchain + " "):
                    return Producer(toolchain, version or None,
                                    f"its producers section says {field_name} {name}")
    return None


def _emscripten_shape(module: Module) -> Producer | None:
    names = [imp.name for imp in module.imports] + [e.name for e in module.exports]
    for name in names:
        if name.lstrip("_").startswith("emscripten_"):
            return Producer("Emscripten", None, f"it uses Emscripten's runtime ('{name}')")
    exports = {e.name for e in module.exports}
    if _EMSCRIPTEN_STACK_EXPORTS <= exports:
        return Producer("Emscripten", None, "it exports Emscripten's stackSave/stackRestore/"
                                            "stackAlloc")
    return None


def _assemblyscript_shape(module: Module) -> Producer | None:
    abort = next((imp for imp in module.imports
                  if imp.module == "env" and imp.name == "abort"
                  and imp.kind == ExternKind.FUNC), None)
    if abort is None or not isinstance(abort.desc, int):
        return None
    try:
        if module.type_at(abort.desc) != FuncType((I32,) * 4, ()):
            return None
    except ThreadifyError:
        return None
    if any(_ASC_LIB_PATH in bytes(segment.init) for segment in module.data):
        return Producer("AssemblyScript", None,
                        "it imports env.abort and carries AssemblyScript's ~lib/ paths")
    return None
