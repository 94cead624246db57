"""Structural mutations of WebAssembly modules, for the fuzzers and the fuzz tests.

Random byte edits rarely get past the first section header, so these edit a module the way a
broken tool or a hostile file would: LEBs padded past their limit, sections swapped, repeated or
dropped, counts and sizes that claim gigabytes, and custom sections that carry nonsense under the
names threadify reads (``name``, ``producers``, ``target_features``, ``threadify``) or others
leave (``linking``, ``.debug_*``, ``dylink.0``). The section splitter here is deliberately
independent of ``threadify.wasm`` and tolerant: it must cut modules that the binary layer
rejects.

Every mutator takes the module and a ``random.Random`` and returns new bytes plus a short
description (kept with a finding so that it can be reproduced and minimised).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

MAGIC = b"\0asm\x01\0\0\0"

#: Custom-section names worth lying in: read by threadify, or common in real modules.
CUSTOM_NAMES = ("name", "producers", "target_features", "threadify", "linking", "reloc.CODE",
                ".debug_info", ".debug_line", ".debug_str", "dylink.0", "dylink",
                "__wasm_bindgen_unstable", "sourceMappingURL", "external_debug_info", "")

#: Section ids whose payload starts with an item count.
VECTOR_IDS = (1, 2, 3, 4, 5, 6, 9, 10, 11, 13)


def uleb(value: int, width: int = 0) -> bytes:
    """``value`` as unsigned LEB128, padded to ``width`` bytes (any width: past 5 is overlong)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value or len(out) + 1 < width:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_uleb(data: bytes, pos: int, limit: int = 10) -> tuple[int, int] | None:
    """The LEB at ``pos`` and the position after it, or ``None`` when it does not end."""
    value = shift = 0
    for i in range(limit):
        if pos + i >= len(data):
            return None
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos + i + 1
    return None


def split(data: bytes) -> list[tuple[int, bytes]] | None:
    """``(id, payload)`` of every section, or ``None`` when the module cannot be cut cleanly."""
    if data[:8] != MAGIC:
        return None
    pos, out = 8, []
    while pos < len(data):
        head = read_uleb(data, pos + 1, 5)
        if head is None:
            return None
        size, start = head
        if start + size > len(data):
            return None
        out.append((data[pos], data[start:start + size]))
        pos = start + size
    return out


def join(sections: list[tuple[int, bytes]], widths: dict[int, int] | None = None) -> bytes:
    """A module of ``sections``; ``widths[i]`` pads section ``i``'s size LEB."""
    widths = widths or {}
    parts = [MAGIC]
    for i, (section_id, payload) in enumerate(sections):
        parts += [bytes((section_id,)), uleb(len(payload), widths.get(i, 0)), payload]
    return b"".join(parts)


def custom(name: str, payload: bytes) -> tuple[int, bytes]:
    encoded = name.encode()
    return 0, uleb(len(encoded)) + encoded + payload


def custom_name(payload: bytes) -> str | None:
    head = read_uleb(payload, 0, 5)
    if head is None or head[1] + head[0] > len(payload):
        return None
    return payload[head[1]:head[1] + head[0]].decode(errors="replace")


Mutator = Callable[[bytes, random.Random], tuple[bytes, str] | None]


def overlong_section_size(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    """Pad one section's size LEB: to 5 bytes (well-formed) or 6..11 (malformed)."""
    sections = split(data)
    if not sections:
        return None
    i = rng.randrange(len(sections))
    width = rng.choice([2, 5, 5, 6, 11])
    return join(sections, {i: width}), f"section {i} size LEB padded to {width} bytes"


def overlong_leb_in_payload(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    """Turn a LEB's last byte ``b`` (any byte below 0x80 in a payload) into ``b|0x80, 0x80 ...,
    0x00``: the same value, 2 to 7 bytes wide; the section's size is fixed up."""
    sections = split(data)
    if not sections:
        return None
    i = rng.randrange(len(sections))
    section_id, payload = sections[i]
    candidates = [p for p in range(min(len(payload), 4096)) if payload[p] < 0x80]
    if not candidates:
        return None
    p = rng.choice(candidates)
    extra = rng.choice([1, 4, 5, 6])
    padded = bytes((payload[p] | 0x80,)) + b"\x80" * (extra - 1) + b"\x00"
    sections[i] = (section_id, payload[:p] + padded + payload[p + 1:])
    return join(sections), f"section {i} byte {p}: LEB end padded by {extra}"


def reorder(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    sections = split(data)
    if not sections or len(sections) < 2:
        return None
    i, j = rng.sample(range(len(sections)), 2)
    sections[i], sections[j] = sections[j], sections[i]
    return join(sections), f"sections {i} and {j} swapped"


def duplicate(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    sections = split(data)
    if not sections:
        return None
    i = rng.randrange(len(sections))
    j = rng.randrange(len(sections) + 1)
    sections.insert(j, sections[i])
    return join(sections), f"section {i} repeated at {j}"


def drop(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    sections = split(data)
    if not sections:
        return None
    i = rng.randrange(len(sections))
    del sections[i]
    return join(sections), f"section {i} removed"


def huge_count(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    """Replace a vector section's item count with a huge one (the payload stays small)."""
    sections = split(data)
    if not sections:
        return None
    vectors = [i for i, (sid, _) in enumerate(sections) if sid in VECTOR_IDS]
    if not vectors:
        return None
    i = rng.choice(vectors)
    section_id, payload = sections[i]
    head = read_uleb(payload, 0, 5)
    if head is None:
        return None
    count = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 1 << 28, 0x10000, head[0] + 1, head[0] * 1000])
    count &= 0xFFFFFFFF
    sections[i] = (section_id, uleb(count) + payload[head[1]:])
    return join(sections), f"section {i} (id {section_id}) count {count}"


def huge_size(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    """A section (or a name inside one) whose size claims far more bytes than there are."""
    sections = split(data)
    if not sections:
        return None
    i = rng.randrange(len(sections))
    size = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 1 << 30, 0xFFFFFFFFF])
    parts = [MAGIC]
    for k, (section_id, payload) in enumerate(sections):
        claimed = size if k == i else len(payload)
        parts += [bytes((section_id,)), uleb(claimed), payload]
    return b"".join(parts), f"section {i} size claims {size}"


def _name_payload(rng: random.Random) -> bytes:
    """A ``name`` section: sometimes well-formed, with odd indices, duplicates and huge counts."""
    subs = []
    for _ in range(rng.randint(1, 4)):
        sub_id = rng.choice([0, 1, 2, 7, 9, 1, 7, 9, 4, 200])
        if sub_id == 0:
            body = uleb(3) + b"mod"
        elif sub_id == 2:  # local names: an indirect map
            function = uleb(rng.choice([0, 5, 0xFFFFFFFF]))
            body = uleb(1) + function + uleb(1) + uleb(0) + uleb(1) + b"x"
        else:
            n = rng.randint(0, 4)
            count = rng.choice([n, n, 0xFFFFFFFF, n + 10])
            body = uleb(count)
            for _k in range(n):
                index = rng.choice([0, 1, 2, 3, 1000, 0xFFFFFFFF])
                name = rng.choice([b"__stack_pointer", b"__tls_base", b".tdata", b"__tls_size",
                                   b"__wasm_init_memory", b"__wasm_init_tls", b"\xff\xfe",
                                   b"__heap_base", b"__tls_align", b"", b"x" * 300])
                body += uleb(index) + uleb(len(name)) + name
        if rng.random() < 0.2:
            body = body[:rng.randrange(len(body) + 1)]
        size = len(body) if rng.random() < 0.9 else rng.choice([0xFFFFFFFF, len(body) + 3])
        subs.append(bytes((sub_id,)) + uleb(size) + body)
    return b"".join(subs)


def _producers_payload(rng: random.Random) -> bytes:
    fields = []
    n = rng.randint(0, 3)
    for _ in range(n):
        field = rng.choice([b"language", b"processed-by", b"sdk", b"\xc3\x28"])
        m = rng.randint(0, 3)
        values = b"".join(uleb(len(v)) + v + uleb(len(w)) + w
                          for v, w in [(rng.choice([b"Go", b"Rust", b"clang", b"Emscripten",
                                                    b"AssemblyScript", b"wasm-bindgen",
                                                    b"Go x\nthreadify: error: forged"]),
                                        rng.choice([b"1.0", b"", b"\xff", b"1\r\n2"]))] * m)
        fields.append(uleb(len(field)) + field + uleb(rng.choice([m, m, 0xFFFFFFFF])) + values)
    return uleb(rng.choice([n, n, 0xFFFFFFFF, n + 1])) + b"".join(fields)


def _target_features_payload(rng: random.Random) -> bytes:
    n = rng.randint(0, 4)
    items = b""
    for _ in range(n):
        prefix = rng.choice([b"+", b"-", b"=", b"?", b"\x00"])
        name = rng.choice([b"atomics", b"bulk-memory", b"shared-mem", b"", b"atomics" * 40])
        items += prefix + uleb(len(name)) + name
    return uleb(rng.choice([n, n, 0xFFFFFFFF, n + 2])) + items


#: A record as threadify writes it (the layout of a small class A output), for forgeries.
RECORD = {"abi": 1, "block_size": 1114112, "blocks_from": 131072, "class": "A",
          "control_block": 65472, "control_on_stack": True,
          "functions": {"threadify_init": 31, "threadify_stack_overflow": 24,
                        "wasi_thread_start": 30},
          "globals": {"threadify_block": 3, "threadify_tid": 2}, "stack_pointer": 0,
          "stack_size": 1048576, "stack_top": 1048592, "tdata": 0, "tls_align": 4096,
          "tls_base": 1, "tls_offset": 1052672, "tls_size": 1128, "version": "0.1.0"}


def forged_record(rng: random.Random) -> bytes:
    """:data:`RECORD` with a few fields removed or given other values or types."""
    record: dict[str, object] = json.loads(json.dumps(RECORD))
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(list(record))
        value = record[key]
        odd: object = rng.choice([0, 1, 65536, 2**31, 2**32 - 1, 10**12, -5, None, "x", [], {},
                                  True])
        if rng.random() < 0.3:
            del record[key]
        elif isinstance(value, dict) and value:
            value[rng.choice(list(value))] = odd
        else:
            record[key] = odd
    if rng.random() < 0.2:
        record["stack_check"] = rng.choice([{}, {"checks": 3, "main_stack": [0, 65536]}, 7])
    return json.dumps(record).encode()


def _threadify_payload(rng: random.Random) -> bytes:
    if rng.random() < 0.4:
        return forged_record(rng)
    return rng.choice([b"{}", b"[]", b"null", b"{\"version\": 1, \"abi\": \"x\"}",
                       b"{\"abi\": 1, \"stack_check\": {}}", b"\xff\xfe", b"[" * 100000,
                       b"{\"abi\": true}", b"1e999999", b"{\"abi\": 1, \"x\": NaN}"])


def bogus_custom(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    """Insert (or replace) a custom section with a known name and a nonsense payload."""
    sections = split(data)
    if sections is None:
        return None
    name = rng.choice(CUSTOM_NAMES)
    maker = {"name": _name_payload, "producers": _producers_payload,
             "target_features": _target_features_payload,
             "threadify": _threadify_payload}.get(name)
    if maker is not None and rng.random() < 0.8:
        payload = maker(rng)
    else:
        payload = rng.choice([b"", rng.randbytes(rng.randint(1, 64)), b"\xff" * 16,
                              uleb(0xFFFFFFFF) + b"\x01"])
    if rng.random() < 0.1:
        # a custom section whose own name runs past its payload
        section = (0, uleb(len(name) + 50) + name.encode())
    else:
        section = custom(name, payload)
    existing = [i for i, (sid, p) in enumerate(sections)
                if sid == 0 and custom_name(p) == name]
    if existing and rng.random() < 0.6:
        where = rng.choice(existing)
        sections[where] = section
        how = f"custom {name!r} at {where} replaced"
    else:
        where = rng.randrange(len(sections) + 1)
        sections.insert(where, section)
        how = f"custom {name!r} inserted at {where}"
    return join(sections), how + f" ({len(section[1])} bytes)"


def edit_custom(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    """Flip bytes or cut inside an existing custom section, keeping the section framing right."""
    sections = split(data)
    if not sections:
        return None
    customs = [i for i, (sid, _) in enumerate(sections) if sid == 0]
    if not customs:
        return None
    i = rng.choice(customs)
    payload = bytearray(sections[i][1])
    name = custom_name(bytes(payload))
    start = len((name or "").encode()) + 1
    if len(payload) <= start:
        return None
    for _ in range(rng.randint(1, 4)):
        p = rng.randrange(start, len(payload))
        if rng.random() < 0.2:
            del payload[p:]
            if len(payload) <= start:
                break
        else:
            payload[p] = rng.choice([0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    sections[i] = (0, bytes(payload))
    return join(sections), f"custom {name!r} at {i} edited"


def byte_edits(data: bytes, rng: random.Random) -> tuple[bytes, str] | None:
    buf = bytearray(data)
    edits = []
    for _ in range(rng.randint(1, 8)):
        if not buf:
            break
        kind = rng.choice(["flip", "set", "insert", "delete", "truncate"])
        pos = rng.randrange(len(buf))
        if kind == "flip":
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == "set":
            buf[pos] = rng.choice([0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif kind == "insert":
            buf[pos:pos] = rng.randbytes(rng.randint(1, 6))
        elif kind == "delete":
            del buf[pos:pos + rng.randint(1, 6)]
        else:
            del buf[pos:]
        edits.append(f"{kind}@{pos}")
    return bytes(buf), "bytes " + " ".join(edits)


STRUCTURAL: list[Mutator] = [overlong_section_size, overlong_leb_in_payload, reorder, duplicate,
                             drop, huge_count, huge_size, bogus_custom, bogus_custom,
                             edit_custom]


def tiny_hostile(rng: random.Random) -> tuple[bytes, str]:
    """A module of under ~100 bytes that claims billions of items somewhere."""
    count = uleb(rng.choice([0xFFFFFFFF, 0xFFFFFFF0, 1 << 31]))
    kind = rng.randrange(6)
    if kind == 0:
        sections = [(rng.choice(VECTOR_IDS), count + b"\x00" * rng.randint(0, 8))]
    elif kind == 1:  # a name section with a function-name map claiming 4 G entries
        body = count + b"\x00\x01a"
        sections = [custom("name", b"\x01" + uleb(len(body)) + body)]
    elif kind == 2:
        sections = [custom(rng.choice(["producers", "target_features", "linking",
                                       "dylink.0"]), count + b"\x01")]
    elif kind == 3:  # a function body declaring 4 G locals
        body = b"\x01" + count + b"\x7f\x0b"
        sections = [(1, b"\x01\x60\x00\x00"), (3, b"\x01\x00"),
                    (10, b"\x01" + uleb(len(body)) + body)]
    elif kind == 4:  # a br_table with 4 G labels
        body = b"\x00\x41\x00\x0e" + count + b"\x00\x0b"
        sections = [(1, b"\x01\x60\x00\x00"), (3, b"\x01\x00"),
                    (10, b"\x01" + uleb(len(body)) + body)]
    else:  # a memory of 4 G pages, shared, and a data segment of 4 GiB
        sections = [(5, b"\x01\x03" + uleb(0xFFFF) + uleb(0x10000)),
                    (11, b"\x01\x01" + count)]
    return join(sections), f"tiny hostile #{kind}"
