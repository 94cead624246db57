"""The ``producers`` and ``target_features`` custom sections (tool-conventions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from threadify.wasm.reader import Reader
from threadify.wasm.writer import name, uleb


@dataclass
class Producers:
    """``producers``: field name (``language``, ``processed-by``, ``sdk``) -> ordered
    ``(name, version)`` pairs."""

    fields: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def decode(cls, payload: bytes, base: int = 0) -> Producers:
        r = Reader(bytes(payload), base=base)
        out: dict[str, list[tuple[str, str]]] = {}
        for _ in range(r.count("a producers field count", 2)):
            fname = r.name("a producers field name")
            values = []
            for _ in range(r.count("a producers value count", 2)):
                values.append((r.name("a producer name"), r.name("a producer version")))
            out[fname] = values
        if not r.at_end():
            raise r.error("the end of the producers section")
        return cls(out)

    def encode(self) -> bytes:
        parts = [uleb(len(self.fields))]
        for fname, values in self.fields.items():
            parts.append(name(fname) + uleb(len(values)))
            parts.extend(name(n) + name(v) for n, v in values)
        return b"".join(parts)

    def add(self, field_name: str, name: str, version: str) -> None:
        """Record ``name version`` under ``field_name``, replacing an entry of the same name."""
        values = self.fields.setdefault(field_name, [])
        for i, (n, _v) in enumerate(values):
            if n == name:
                values[i] = (name, version)
                return
        values.append((name, version))


@dataclass
class TargetFeatures:
    """``target_features``: ``(prefix, feature)`` pairs, prefix ``+`` (used), ``-``
    (disallowed) or ``=`` (required)."""

    features: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def decode(cls, payload: bytes, base: int = 0) -> TargetFeatures:
        r = Reader(bytes(payload), base=base)
        out = []
        for _ in range(r.count("a feature count", 2)):
            start = r.pos
            prefix = r.u8("a feature prefix")
            if prefix not in b"+-=":
                raise r.error("a feature prefix '+', '-' or '='", start)
            out.append((chr(prefix), r.name("a feature name")))
        if not r.at_end():
            raise r.error("the end of the target_features section")
        return cls(out)

    def encode(self) -> bytes:
        return uleb(len(self.features)) + b"".join(
            p.encode("ascii") + name(n) for p, n in self.features)

    def has(self, feature: str) -> bool:
        """True when the module was built using ``feature`` (prefix ``+`` or ``=``)."""
        return any(n == feature and p in "+=" for p, n in self.features)
