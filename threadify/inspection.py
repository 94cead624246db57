"""``threadify inspect``: what threadify sees in a module, and its verdict.

The report shows the memory, every linker symbol found and *how* (name section, export or a
documented heuristic), the TLS size and alignment, and the class A/B/C/D with the reasons — so a
user whose module is rejected can see which symbol is missing and which linker flag provides it.
Malformed input is reported as class D with the decoder's message.

Every field is typed (dataclasses and the :class:`~threadify.classify.Verdict` enum), so a
caller's mistakes show in mypy; :meth:`Report.as_dict` is the ``--json`` form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TypeAlias, cast

from threadify.classify import MemoryInfo, Verdict, analyse, find_memory
from threadify.errors import Hint, Renderer, Suggestion, ThreadifyError, one_line
from threadify.linker import LinkerSymbols, find_symbols
from threadify.validation import BackgroundValidation, validated_by_default
from threadify.wasm import Module

__all__ = ["JSON", "MemoryReport", "Report", "ThreadifySection", "TlsReport", "Verdict",
           "inspect"]

#: A JSON value as :func:`json.loads` returns it.
JSON: TypeAlias = str | int | float | bool | None | list["JSON"] | dict[str, "JSON"]


@dataclass(frozen=True)
class MemoryReport:
    """The module's single memory."""

    imported: bool
    #: ``module.name`` of the import (``env.memory``), ``None`` when the memory is defined.
    import_name: str | None
    min_pages: int
    max_pages: int | None
    shared: bool
    memory64: bool

    @classmethod
    def of(cls, info: MemoryInfo) -> MemoryReport:
        return cls(info.imported,
                   f"{info.import_module}.{info.import_name}" if info.imported else None,
                   info.type.min, info.type.max, info.type.shared, info.type.memory64)

    def as_dict(self) -> dict[str, JSON]:
        return {"imported": self.imported, "import": self.import_name,
                "min_pages": self.min_pages, "max_pages": self.max_pages,
                "shared": self.shared, "memory64": self.memory64}


@dataclass(frozen=True)
class TlsReport:
    """The thread-local storage every thread gets a copy of."""

    #: Bytes of one TLS block (0: the module has no thread-locals).
    size: int
    align: int
    #: Where the alignment came from (``__tls_align``, the ``.tdata`` address, or the default).
    align_how: str
    #: Bytes of the ``.tdata`` template segment.
    template_len: int

    def as_dict(self) -> dict[str, JSON]:
        return {"size": self.size, "align": self.align, "align_how": self.align_how,
                "template_len": self.template_len}


@dataclass(frozen=True)
class ThreadifySection:
    """The ``threadify`` custom section of a module threadify already processed."""

    #: threadify version and output ABI version that wrote it (``None`` when unreadable).
    version: str | None
    abi: int | None
    #: The whole record (options and memory layout), as written; ``{}`` when unreadable.
    record: dict[str, JSON]

    @classmethod
    def read(cls, payload: bytes) -> ThreadifySection:
        try:
            record = json.loads(bytes(payload).decode())
            # NaN, Infinity (1e999): Python reads them, but --json would print what no other
            # JSON reader accepts
            json.dumps(record, allow_nan=False)
        except (ValueError, RecursionError):  # also UnicodeDecodeError; "[[[[..." nests deep
            record = None
        if not isinstance(record, dict):
            return cls(None, None, {})
        version, abi = record.get("version"), record.get("abi")
        return cls(version if isinstance(version, str) else None,
                   abi if isinstance(abi, int) and not isinstance(abi, bool) else None, record)

    def as_dict(self) -> dict[str, JSON]:
        return dict(self.record) if self.record else {"error": "unreadable threadify section"}


@dataclass
class Report:
    """The result of :func:`inspect`; ``as_dict()`` is the ``--json`` form."""

    verdict: Verdict
    reasons: list[str]
    #: How to fix a rejection (class D), when threadify knows.
    hint: Hint | None = None
    memory: MemoryReport | None = None
    symbols: LinkerSymbols | None = None
    tls: TlsReport | None = None
    #: Whether ``target_features`` lists atomics (``None``: the section is missing).
    atomics: bool | None = None
    threadify: ThreadifySection | None = None
    #: Names of the custom sections, in order.
    sections: list[str] = field(default_factory=list)
    #: Whether threadify added stack-limit checks (``--stack-check``, docs/stack-check.md).
    stack_checks: bool = False
    #: Whether the function bodies were validated (see :func:`inspect`'s ``validate``).
    validated: bool = False

    @property
    def accepted(self) -> bool:
        return self.verdict.accepted

    @property
    def fix(self) -> str | None:
        """The hint in a library caller's words (``allow_non_atomic=True``)."""
        return None if self.hint is None else self.hint.render()

    def as_dict(self, name: Renderer = Suggestion.as_keyword) -> dict[str, JSON]:
        """The JSON form; ``name`` writes the options a hint suggests (the CLI's flags)."""
        symbols = None if self.symbols is None else cast(JSON, self.symbols.as_dict())
        return {
            "class": self.verdict.value,
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "fix": None if self.hint is None else self.hint.render(name),
            "memory": None if self.memory is None else self.memory.as_dict(),
            "symbols": symbols,
            "tls": None if self.tls is None else self.tls.as_dict(),
            "atomics": self.atomics,
            "threadify": None if self.threadify is None else self.threadify.as_dict(),
            "sections": list(self.sections),
            "stack_checks": self.stack_checks,
            "validated": self.validated,
        }

    def text(self, name: Renderer = Suggestion.as_keyword) -> str:
        """A human-readable report; ``name`` writes the options a hint suggests."""
        lines = [f"class {self.verdict.value}: {self.verdict.meaning}"]
        lines += [f"  - {reason}" for reason in self.reasons]
        if self.hint is not None:
            lines.append(f"  fix: {self.hint.render(name)}")
        if self.memory is not None:
            m = self.memory
            where = f"imported as {one_line(m.import_name or '')}" if m.imported else "defined"
            lines.append(f"memory: {where}, {m.min_pages} pages initial, max "
                         f"{m.max_pages if m.max_pages is not None else 'none'}, "
                         f"{'shared' if m.shared else 'not shared'}")
        if self.atomics is not None:
            lines.append(f"atomics: {'yes' if self.atomics else 'no'} (target_features)")
        if self.memory is not None:
            lines.append("function bodies: " + ("validated" if self.validated else
                                                "not validated (skipped on request, or over 2 "
                                                "MiB of code)"))
        if self.symbols is not None:
            lines.append("linker symbols:")
            for key in self.symbols.as_dict():
                if key == "values":
                    continue
                found = getattr(self.symbols, key)
                shown = "not found" if found is None else f"#{found.index} ({found.how})"
                lines.append(f"  {key:<14} {shown}")
        if self.tls is not None:
            lines.append(f"tls: size {self.tls.size}, align {self.tls.align} "
                         f"({self.tls.align_how}), template {self.tls.template_len} bytes")
        if self.threadify is not None:
            lines.append(f"threadify: processed by threadify "
                         f"{one_line(str(self.threadify.version))}, "
                         f"ABI {self.threadify.abi}, stack checks: "
                         f"{'yes' if self.stack_checks else 'no'}")
        return "\n".join(lines)


def _describe_ready(module: Module, report: Report) -> None:
    """Memory and linker symbols of an already thread-ready module, as far as they show."""
    try:
        memory, _problem = find_memory(module)
        if memory is not None:
            report.memory = MemoryReport.of(memory)
        report.symbols = find_symbols(module)
    except ThreadifyError:
        pass  # a class C module need not look like lld output


def inspect(data: bytes, validate: bool | None = None) -> Report:
    """Analyse ``data`` without changing it. Never raises for bad input: that is class D.

    ``validate`` decides, as for the transform, whether the function bodies are validated
    (``None``: inputs with up to 2 MiB of code). threadify never decodes the bodies it does
    not change, so without validation a module with a corrupt body would be reported as
    accepted here and then rejected by the transform; validated, an invalid module is class D
    with the validator's message, and the rest of the report still shows what was found.
    """
    validation: BackgroundValidation | None = None
    try:
        module = Module.decode(bytes(data))
        if validate or (validate is None and validated_by_default(data)):
            validation = BackgroundValidation(data)  # runs beside the analysis
        analysis = analyse(module)
    except ThreadifyError as error:
        if validation is not None:
            validation.cancel()
        return Report(Verdict.D, [error.problem], error.hint)
    # a reason may quote the module (a producer's name): kept to one line each
    report = Report(analysis.verdict, [one_line(reason) for reason in analysis.reasons])
    if analysis.error is not None:
        report.hint = analysis.error.hint
    if analysis.verdict == Verdict.C:
        _describe_ready(module, report)
    if analysis.memory is not None:
        report.memory = MemoryReport.of(analysis.memory)
    if analysis.symbols is not None:
        report.symbols = analysis.symbols
        report.tls = TlsReport(analysis.tls_size, analysis.tls_align, analysis.tls_align_how,
                               analysis.tdata_len)
    report.atomics = analysis.atomics
    payload = module.get_custom("threadify")
    if payload is not None:
        report.threadify = ThreadifySection.read(payload)
        report.stack_checks = isinstance(report.threadify.record.get("stack_check"), dict)
    report.sections = [name for name, _ in module.custom_sections()]
    if validation is not None:
        report.validated = True
        try:
            validation.result()
        except ThreadifyError as error:
            if report.accepted:  # a rejection keeps its own reason, as the transform's does
                report.verdict, report.reasons, report.hint = (Verdict.D, [error.problem],
                                                               error.hint)
    return report
