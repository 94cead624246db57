"""Opcode tables: text-format mnemonic and immediate kind of every instruction we decode.

One table per encoding space (single byte, and the ``0xFB`` GC, ``0xFC`` misc, ``0xFD`` SIMD and
``0xFE`` threads prefixes, whose sub-opcode is a u32 LEB). The immediate kinds are:

======== =================================================================================
``""``    no immediate
``bt``    block type: ``None`` (empty), a value type, or a :class:`TypeIndex`
``idx``   one u32 index (label, function, local, global, table, tag, type, data, elem, memory)
``idx2``  two u32 indices, in binary order (e.g. ``memory.init`` ``(dataidx, memidx)``)
``brt``   ``br_table``: ``(tuple_of_labels, default)``
``mem``   memory argument ``(align_log2, offset, memidx)``
``meml``  memory argument and lane ``(align_log2, offset, memidx, lane)``
``lane``  one lane-index byte
``i32``   signed 32-bit integer; ``i64`` likewise
``f32``   the 4 raw bytes; ``f64`` the 8 raw bytes; ``v128`` the 16 raw bytes
``selt``  typed ``select``: ``(tuple_of_valtypes,)``
``ht``    heap type as the signed s33 of its encoding: negative = abstract (``-0x10`` = func,
          ``-0x11`` = extern, ...), non-negative = type index
``zero``  a reserved zero byte (``atomic.fence``); no immediate in the tuple
``tt``    ``try_table``: ``(blocktype, catches)`` with catches a tuple of ``(kind, tag, label)``
          for kinds 0 (catch) / 1 (catch_ref) and ``(kind, label)`` for 2 / 3 (catch_all[_ref])
``brc``   ``br_on_cast[_fail]``: ``(flags, label, heaptype1, heaptype2)``
======== =================================================================================

Where the text format has two instructions for one opcode with a flag (``ref.test`` /
``ref.test null``), the mnemonics here are ``ref.test`` / ``ref.test_null`` (and
``ref.cast_null``), so that every mnemonic names exactly one encoding.
"""

from __future__ import annotations

# --- single-byte opcodes -----------------------------------------------------------------------

SINGLE: dict[int, tuple[str, str]] = {
    0x00: ("unreachable", ""), 0x01: ("nop", ""),
    0x02: ("block", "bt"), 0x03: ("loop", "bt"), 0x04: ("if", "bt"), 0x05: ("else", ""),
    0x06: ("try", "bt"), 0x07: ("catch", "idx"), 0x08: ("throw", "idx"),
    0x09: ("rethrow", "idx"), 0x0A: ("throw_ref", ""), 0x0B: ("end", ""),
    0x0C: ("br", "idx"), 0x0D: ("br_if", "idx"), 0x0E: ("br_table", "brt"),
    0x0F: ("return", ""), 0x10: ("call", "idx"), 0x11: ("call_indirect", "idx2"),
    0x12: ("return_call", "idx"), 0x13: ("return_call_indirect", "idx2"),
    0x14: ("call_ref", "idx"), 0x15: ("return_call_ref", "idx"),
    0x18: ("delegate", "idx"), 0x19: ("catch_all", ""),
    0x1A: ("drop", ""), 0x1B: ("select", ""), 0x1C: ("select_t", "selt"),
    0x1F: ("try_table", "tt"),
    0x20: ("local.get", "idx"), 0x21: ("local.set", "idx"), 0x22: ("local.tee", "idx"),
    0x23: ("global.get", "idx"), 0x24: ("global.set", "idx"),
    0x25: ("table.get", "idx"), 0x26: ("table.set", "idx"),
    0x3F: ("memory.size", "idx"), 0x40: ("memory.grow", "idx"),
    0x41: ("i32.const", "i32"), 0x42: ("i64.const", "i64"),
    0x43: ("f32.const", "f32"), 0x44: ("f64.const", "f64"),
    0xD0: ("ref.null", "ht"), 0xD1: ("ref.is_null", ""), 0xD2: ("ref.func", "idx"),
    0xD3: ("ref.eq", ""), 0xD4: ("ref.as_non_null", ""),
    0xD5: ("br_on_null", "idx"), 0xD6: ("br_on_non_null", "idx"),
}

_LOADS_STORES = (
    "i32.load i64.load f32.load f64.load i32.load8_s i32.load8_u i32.load16_s i32.load16_u "
    "i64.load8_s i64.load8_u i64.load16_s i64.load16_u i64.load32_s i64.load32_u "
    "i32.store i64.store f32.store f64.store i32.store8 i32.store16 i64.store8 i64.store16 "
    "i64.store32"
).split()
for _i, _n in enumerate(_LOADS_STORES):
    SINGLE[0x28 + _i] = (_n, "mem")

_NUMERIC = (
    "i32.eqz i32.eq i32.ne i32.lt_s i32.lt_u i32.gt_s i32.gt_u i32.le_s i32.le_u i32.ge_s "
    "i32.ge_u i64.eqz i64.eq i64.ne i64.lt_s i64.lt_u i64.gt_s i64.gt_u i64.le_s i64.le_u "
    "i64.ge_s i64.ge_u f32.eq f32.ne f32.lt f32.gt f32.le f32.ge f64.eq f64.ne f64.lt f64.gt "
    "f64.le f64.ge i32.clz i32.ctz i32.popcnt i32.add i32.sub i32.mul i32.div_s i32.div_u "
    "i32.rem_s i32.rem_u i32.and i32.or i32.xor i32.shl i32.shr_s i32.shr_u i32.rotl i32.rotr "
    "i64.clz i64.ctz i64.popcnt i64.add i64.sub i64.mul i64.div_s i64.div_u i64.rem_s "
    "i64.rem_u i64.and i64.or i64.xor i64.shl i64.shr_s i64.shr_u i64.rotl i64.rotr f32.abs "
    "f32.neg f32.ceil f32.floor f32.trunc f32.nearest f32.sqrt f32.add f32.sub f32.mul f32.div "
    "f32.min f32.max f32.copysign f64.abs f64.neg f64.ceil f64.floor f64.trunc f64.nearest "
    "f64.sqrt f64.add f64.sub f64.mul f64.div f64.min f64.max f64.copysign i32.wrap_i64 "
    "i32.trunc_f32_s i32.trunc_f32_u i32.trunc_f64_s i32.trunc_f64_u i64.extend_i32_s "
    "i64.extend_i32_u i64.trunc_f32_s i64.trunc_f32_u i64.trunc_f64_s i64.trunc_f64_u "
    "f32.convert_i32_s f32.convert_i32_u f32.convert_i64_s f32.convert_i64_u f32.demote_f64 "
    "f64.convert_i32_s f64.convert_i32_u f64.convert_i64_s f64.convert_i64_u f64.promote_f32 "
    "i32.reinterpret_f32 i64.reinterpret_f64 f32.reinterpret_i32 f64.reinterpret_i64 "
    "i32.extend8_s i32.extend16_s i64.extend8_s i64.extend16_s i64.extend32_s"
).split()
for _i, _n in enumerate(_NUMERIC):
    SINGLE[0x45 + _i] = (_n, "")

# --- 0xFC: saturating conversions, bulk memory, tables, wide arithmetic ------------------------

MISC: dict[int, tuple[str, str]] = {
    0: ("i32.trunc_sat_f32_s", ""), 1: ("i32.trunc_sat_f32_u", ""),
    2: ("i32.trunc_sat_f64_s", ""), 3: ("i32.trunc_sat_f64_u", ""),
    4: ("i64.trunc_sat_f32_s", ""), 5: ("i64.trunc_sat_f32_u", ""),
    6: ("i64.trunc_sat_f64_s", ""), 7: ("i64.trunc_sat_f64_u", ""),
    8: ("memory.init", "idx2"), 9: ("data.drop", "idx"), 10: ("memory.copy", "idx2"),
    11: ("memory.fill", "idx"), 12: ("table.init", "idx2"), 13: ("elem.drop", "idx"),
    14: ("table.copy", "idx2"), 15: ("table.grow", "idx"), 16: ("table.size", "idx"),
    17: ("table.fill", "idx"),
    19: ("i64.add128", ""), 20: ("i64.sub128", ""), 21: ("i64.mul_wide_s", ""),
    22: ("i64.mul_wide_u", ""),
}

# --- 0xFD: SIMD and relaxed SIMD ---------------------------------------------------------------

SIMD: dict[int, tuple[str, str]] = {}
_SIMD_MEM = (
    "v128.load v128.load8x8_s v128.load8x8_u v128.load16x4_s v128.load16x4_u v128.load32x2_s "
    "v128.load32x2_u v128.load8_splat v128.load16_splat v128.load32_splat v128.load64_splat "
    "v128.store"
).split()
for _i, _n in enumerate(_SIMD_MEM):
    SIMD[_i] = (_n, "mem")
SIMD[12] = ("v128.const", "v128")
SIMD[13] = ("i8x16.shuffle", "v128")
for _i, _n in enumerate("i8x16.swizzle i8x16.splat i16x8.splat i32x4.splat i64x2.splat "
                        "f32x4.splat f64x2.splat".split()):
    SIMD[14 + _i] = (_n, "")
for _i, _n in enumerate(
        "i8x16.extract_lane_s i8x16.extract_lane_u i8x16.replace_lane i16x8.extract_lane_s "
        "i16x8.extract_lane_u i16x8.replace_lane i32x4.extract_lane i32x4.replace_lane "
        "i64x2.extract_lane i64x2.replace_lane f32x4.extract_lane f32x4.replace_lane "
        "f64x2.extract_lane f64x2.replace_lane".split()):
    SIMD[21 + _i] = (_n, "lane")
_cmp_i = "eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u".split()
_cmp_f = "eq ne lt gt le ge".split()
_op = 35
for _shape, _ops in (("i8x16", _cmp_i), ("i16x8", _cmp_i), ("i32x4", _cmp_i),
                     ("f32x4", _cmp_f), ("f64x2", _cmp_f)):
    for _n in _ops:
        SIMD[_op] = (f"{_shape}.{_n}", "")
        _op += 1
for _i, _n in enumerate("v128.not v128.and v128.andnot v128.or v128.xor v128.bitselect "
                        "v128.any_true".split()):
    SIMD[77 + _i] = (_n, "")
for _i, _n in enumerate("v128.load8_lane v128.load16_lane v128.load32_lane v128.load64_lane "
                        "v128.store8_lane v128.store16_lane v128.store32_lane "
                        "v128.store64_lane".split()):
    SIMD[84 + _i] = (_n, "meml")
SIMD[92] = ("v128.load32_zero", "mem")
SIMD[93] = ("v128.load64_zero", "mem")
_SIMD_REST = {
    94: "f32x4.demote_f64x2_zero", 95: "f64x2.promote_low_f32x4",
    96: "i8x16.abs", 97: "i8x16.neg", 98: "i8x16.popcnt", 99: "i8x16.all_true",
    100: "i8x16.bitmask", 101: "i8x16.narrow_i16x8_s", 102: "i8x16.narrow_i16x8_u",
    103: "f32x4.ceil", 104: "f32x4.floor", 105: "f32x4.trunc", 106: "f32x4.nearest",
    107: "i8x16.shl", 108: "i8x16.shr_s", 109: "i8x16.shr_u", 110: "i8x16.add",
    111: "i8x16.add_sat_s", 112: "i8x16.add_sat_u", 113: "i8x16.sub", 114: "i8x16.sub_sat_s",
    115: "i8x16.sub_sat_u", 116: "f64x2.ceil", 117: "f64x2.floor", 118: "i8x16.min_s",
    119: "i8x16.min_u", 120: "i8x16.max_s", 121: "i8x16.max_u", 122: "f64x2.trunc",
    123: "i8x16.avgr_u", 124: "i16x8.extadd_pairwise_i8x16_s",
    125: "i16x8.extadd_pairwise_i8x16_u", 126: "i32x4.extadd_pairwise_i16x8_s",
    127: "i32x4.extadd_pairwise_i16x8_u",
    128: "i16x8.abs", 129: "i16x8.neg", 130: "i16x8.q15mulr_sat_s", 131: "i16x8.all_true",
    132: "i16x8.bitmask", 133: "i16x8.narrow_i32x4_s", 134: "i16x8.narrow_i32x4_u",
    135: "i16x8.extend_low_i8x16_s", 136: "i16x8.extend_high_i8x16_s",
    137: "i16x8.extend_low_i8x16_u", 138: "i16x8.extend_high_i8x16_u",
    139: "i16x8.shl", 140: "i16x8.shr_s", 141: "i16x8.shr_u", 142: "i16x8.add",
    143: "i16x8.add_sat_s", 144: "i16x8.add_sat_u", 145: "i16x8.sub", 146: "i16x8.sub_sat_s",
    147: "i16x8.sub_sat_u", 148: "f64x2.nearest", 149: "i16x8.mul", 150: "i16x8.min_s",
    151: "i16x8.min_u", 152: "i16x8.max_s", 153: "i16x8.max_u", 155: "i16x8.avgr_u",
    156: "i16x8.extmul_low_i8x16_s", 157: "i16x8.extmul_high_i8x16_s",
    158: "i16x8.extmul_low_i8x16_u", 159: "i16x8.extmul_high_i8x16_u",
    160: "i32x4.abs", 161: "i32x4.neg", 163: "i32x4.all_true", 164: "i32x4.bitmask",
    167: "i32x4.extend_low_i16x8_s", 168: "i32x4.extend_high_i16x8_s",
    169: "i32x4.extend_low_i16x8_u", 170: "i32x4.extend_high_i16x8_u",
    171: "i32x4.shl", 172: "i32x4.shr_s", 173: "i32x4.shr_u", 174: "i32x4.add",
    177: "i32x4.sub", 181: "i32x4.mul", 182: "i32x4.min_s", 183: "i32x4.min_u",
    184: "i32x4.max_s", 185: "i32x4.max_u", 186: "i32x4.dot_i16x8_s",
    188: "i32x4.extmul_low_i16x8_s", 189: "i32x4.extmul_high_i16x8_s",
    190: "i32x4.extmul_low_i16x8_u", 191: "i32x4.extmul_high_i16x8_u",
    192: "i64x2.abs", 193: "i64x2.neg", 195: "i64x2.all_true", 196: "i64x2.bitmask",
    199: "i64x2.extend_low_i32x4_s", 200: "i64x2.extend_high_i32x4_s",
    201: "i64x2.extend_low_i32x4_u", 202: "i64x2.extend_high_i32x4_u",
    203: "i64x2.shl", 204: "i64x2.shr_s", 205: "i64x2.shr_u", 206: "i64x2.add",
    209: "i64x2.sub", 213: "i64x2.mul", 214: "i64x2.eq", 215: "i64x2.ne", 216: "i64x2.lt_s",
    217: "i64x2.gt_s", 218: "i64x2.le_s", 219: "i64x2.ge_s",
    220: "i64x2.extmul_low_i32x4_s", 221: "i64x2.extmul_high_i32x4_s",
    222: "i64x2.extmul_low_i32x4_u", 223: "i64x2.extmul_high_i32x4_u",
    224: "f32x4.abs", 225: "f32x4.neg", 227: "f32x4.sqrt", 228: "f32x4.add", 229: "f32x4.sub",
    230: "f32x4.mul", 231: "f32x4.div", 232: "f32x4.min", 233: "f32x4.max", 234: "f32x4.pmin",
    235: "f32x4.pmax",
    236: "f64x2.abs", 237: "f64x2.neg", 239: "f64x2.sqrt", 240: "f64x2.add", 241: "f64x2.sub",
    242: "f64x2.mul", 243: "f64x2.div", 244: "f64x2.min", 245: "f64x2.max", 246: "f64x2.pmin",
    247: "f64x2.pmax",
    248: "i32x4.trunc_sat_f32x4_s", 249: "i32x4.trunc_sat_f32x4_u",
    250: "f32x4.convert_i32x4_s", 251: "f32x4.convert_i32x4_u",
    252: "i32x4.trunc_sat_f64x2_s_zero", 253: "i32x4.trunc_sat_f64x2_u_zero",
    254: "f64x2.convert_low_i32x4_s", 255: "f64x2.convert_low_i32x4_u",
    # relaxed SIMD
    0x100: "i8x16.relaxed_swizzle", 0x101: "i32x4.relaxed_trunc_f32x4_s",
    0x102: "i32x4.relaxed_trunc_f32x4_u", 0x103: "i32x4.relaxed_trunc_f64x2_s_zero",
    0x104: "i32x4.relaxed_trunc_f64x2_u_zero", 0x105: "f32x4.relaxed_madd",
    0x106: "f32x4.relaxed_nmadd", 0x107: "f64x2.relaxed_madd", 0x108: "f64x2.relaxed_nmadd",
    0x109: "i8x16.relaxed_laneselect", 0x10A: "i16x8.relaxed_laneselect",
    0x10B: "i32x4.relaxed_laneselect", 0x10C: "i64x2.relaxed_laneselect",
    0x10D: "f32x4.relaxed_min", 0x10E: "f32x4.relaxed_max", 0x10F: "f64x2.relaxed_min",
    0x110: "f64x2.relaxed_max", 0x111: "i16x8.relaxed_q15mulr_s",
    0x112: "i16x8.relaxed_dot_i8x16_i7x16_s", 0x113: "i32x4.relaxed_dot_i8x16_i7x16_add_s",
}
for _k, _n in _SIMD_REST.items():
    SIMD[_k] = (_n, "")

# --- 0xFE: threads / atomics -------------------------------------------------------------------

ATOMIC: dict[int, tuple[str, str]] = {
    0x00: ("memory.atomic.notify", "mem"), 0x01: ("memory.atomic.wait32", "mem"),
    0x02: ("memory.atomic.wait64", "mem"), 0x03: ("atomic.fence", "zero"),
}
for _i, _n in enumerate(
        "i32.atomic.load i64.atomic.load i32.atomic.load8_u i32.atomic.load16_u "
        "i64.atomic.load8_u i64.atomic.load16_u i64.atomic.load32_u i32.atomic.store "
        "i64.atomic.store i32.atomic.store8 i32.atomic.store16 i64.atomic.store8 "
        "i64.atomic.store16 i64.atomic.store32".split()):
    ATOMIC[0x10 + _i] = (_n, "mem")
_op = 0x1E
for _rmw in ("add", "sub", "and", "or", "xor", "xchg", "cmpxchg"):
    for _n in (f"i32.atomic.rmw.{_rmw}", f"i64.atomic.rmw.{_rmw}",
               f"i32.atomic.rmw8.{_rmw}_u", f"i32.atomic.rmw16.{_rmw}_u",
               f"i64.atomic.rmw8.{_rmw}_u", f"i64.atomic.rmw16.{_rmw}_u",
               f"i64.atomic.rmw32.{_rmw}_u"):
        ATOMIC[_op] = (_n, "mem")
        _op += 1

# --- 0xFB: GC ----------------------------------------------------------------------------------

GC: dict[int, tuple[str, str]] = {
    0: ("struct.new", "idx"), 1: ("struct.new_default", "idx"), 2: ("struct.get", "idx2"),
    3: ("struct.get_s", "idx2"), 4: ("struct.get_u", "idx2"), 5: ("struct.set", "idx2"),
    6: ("array.new", "idx"), 7: ("array.new_default", "idx"), 8: ("array.new_fixed", "idx2"),
    9: ("array.new_data", "idx2"), 10: ("array.new_elem", "idx2"), 11: ("array.get", "idx"),
    12: ("array.get_s", "idx"), 13: ("array.get_u", "idx"), 14: ("array.set", "idx"),
    15: ("array.len", ""), 16: ("array.fill", "idx"), 17: ("array.copy", "idx2"),
    18: ("array.init_data", "idx2"), 19: ("array.init_elem", "idx2"),
    20: ("ref.test", "ht"), 21: ("ref.test_null", "ht"), 22: ("ref.cast", "ht"),
    23: ("ref.cast_null", "ht"), 24: ("br_on_cast", "brc"), 25: ("br_on_cast_fail", "brc"),
    26: ("any.convert_extern", ""), 27: ("extern.convert_any", ""), 28: ("ref.i31", ""),
    29: ("i31.get_s", ""), 30: ("i31.get_u", ""),
}

PREFIXES: dict[int, dict[int, tuple[str, str]]] = {0xFB: GC, 0xFC: MISC, 0xFD: SIMD, 0xFE: ATOMIC}

#: mnemonic -> (opcode bytes, immediate kind), for the encoder.
BY_NAME: dict[str, tuple[bytes, str]] = {}
for _code, (_n, _kind) in SINGLE.items():
    BY_NAME[_n] = (bytes((_code,)), _kind)
for _prefix, _table in PREFIXES.items():
    for _sub, (_n, _kind) in _table.items():
        _enc = bytearray((_prefix,))
        _v = _sub
        while True:
            _b = _v & 0x7F
            _v >>= 7
            _enc.append(_b | (0x80 if _v else 0))
            if not _v:
                break
        BY_NAME[_n] = (bytes(_enc), _kind)

#: Instructions that open a block closed by ``end`` (``try`` may also close with ``delegate``).
BLOCK_OPENERS = frozenset(["block", "loop", "if", "try", "try_table"])

#: Natural alignment (log2 bytes) of each memory access, used as the default ``align_log2``.
NATURAL_ALIGN: dict[str, int] = {}


def _natural_bits(mnemonic: str) -> int:
    ty, rest = mnemonic.split(".", 1)
    if rest.startswith(("load8x8", "load16x4", "load32x2")):
        return 64
    digits = ""
    for ch in rest:
        if ch.isdigit():
            digits += ch
        elif digits:
            break
    if digits:
        return int(digits)
    if ty == "v128":
        return 128
    if ty == "memory":  # memory.atomic.notify
        return 32
    return int(ty[1:])


for _n, (_code_bytes, _kind) in BY_NAME.items():
    if _kind in ("mem", "meml"):
        NATURAL_ALIGN[_n] = {8: 0, 16: 1, 32: 2, 64: 3, 128: 4}[_natural_bits(_n)]
