"""``threadify inspect``: what threadify sees in a module, and its verdict (SPEC §1).

The report shows the memory, every linker symbol found and *how* (name section, export or a
documented heuristic), the TLS size and alignment, and the class A/B/C/D with the reasons — so a
user whose module is rejected can see which symbol is missing and which linker flag provides it.
Malformed input is reported as class D with the decoder's message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from threadify.classify import analyse, find_memory
from threadify.errors import ThreadifyError
from threadify.linker import find_symbols
from threadify.passes.metadata import read_section
from threadify.wasm import Module


@dataclass
class Report:
    """The result of :func:`inspect`; ``as_dict()`` is the ``--json`` form."""

    verdict: str
    reasons: list[str]
    fix: str | None = None
    memory: dict[str, Any] | None = None
    symbols: dict[str, Any] | None = None
    tls: dict[str, Any] | None = None
    atomics: bool | None = None
    threadify: dict[str, Any] | None = None
    sections: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.verdict in ("A", "B", "C")

    def as_dict(self) -> dict[str, Any]:
        return {
            "class": self.verdict,
            "accepted": self.accepted,
            "reasons": self.reasons,
            "fix": self.fix,
            "memory": self.memory,
            "symbols": self.symbols,
            "tls": self.tls,
            "atomics": self.atomics,
            "threadify": self.threadify,
            "sections": self.sections,
        }

    def text(self) -> str:
        """A human-readable report."""
        meaning = {"A": "shared-memory lld output: will be made thread-ready",
                   "B": "non-shared lld output: memory will be made shared, data written once",
                   "C": "already thread-ready: output = input",
                   "D": "rejected"}[self.verdict]
        lines = [f"class {self.verdict}: {meaning}"]
        lines += [f"  - {reason}" for reason in self.reasons]
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        if self.memory:
            m = self.memory
            where = f"imported as {m['import']}" if m["imported"] else "defined"
            lines.append(f"memory: {where}, {m['min_pages']} pages initial, max "
                         f"{m['max_pages'] if m['max_pages'] is not None else 'none'}, "
                         f"{'shared' if m['shared'] else 'not shared'}")
        if self.atomics is not None:
            lines.append(f"atomics: {'yes' if self.atomics else 'no'} (target_features)")
        if self.symbols:
            lines.append("linker symbols:")
            for key, value in self.symbols.items():
                if key == "values":
                    continue
                shown = "not found" if value is None else f"#{value['index']} ({value['how']})"
                lines.append(f"  {key:<14} {shown}")
        if self.tls:
            lines.append(f"tls: size {self.tls['size']}, align {self.tls['align']} "
                         f"({self.tls['align_how']}), template {self.tls['template_len']} bytes")
        if self.threadify:
            lines.append(f"threadify: processed by threadify {self.threadify.get('version')}, "
                         f"ABI {self.threadify.get('abi')}")
        return "\n".join(lines)


def _describe_ready(module: Module, report: Report) -> None:
    """Memory and linker symbols of an already thread-ready module, as far as they show."""
    try:
        memory, _problem = find_memory(module)
        if memory is not None:
            report.memory = memory.as_dict()
        report.symbols = find_symbols(module).as_dict()
    except ThreadifyError:
        pass  # a class C module need not look like lld output


def inspect(data: bytes) -> Report:
    """Analyse ``data`` without changing it. Never raises for bad input: that is class D."""
    try:
        module = Module.decode(bytes(data))
        analysis = analyse(module)
    except ThreadifyError as error:
        return Report("D", [error.problem], error.fix)
    report = Report(analysis.verdict, list(analysis.reasons))
    if analysis.error is not None:
        report.fix = analysis.error.fix
    if analysis.verdict == "C":
        _describe_ready(module, report)
    if analysis.memory is not None:
        report.memory = analysis.memory.as_dict()
    if analysis.symbols is not None:
        report.symbols = analysis.symbols.as_dict()
        report.tls = {"size": analysis.tls_size, "align": analysis.tls_align,
                      "align_how": analysis.tls_align_how, "template_len": analysis.tdata_len}
    report.atomics = analysis.atomics
    payload = module.get_custom("threadify")
    if payload is not None:
        try:
            report.threadify = read_section(payload)
        except ValueError:
            report.threadify = {"error": "unreadable threadify section"}
    report.sections = [name for name, _ in module.custom_sections()]
    return report
