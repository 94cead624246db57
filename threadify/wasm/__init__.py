"""The binary layer: read and write any WebAssembly core module exactly.

It knows nothing about threads. Structure (one module per structure, pyelftools-style):

- :mod:`.reader` / :mod:`.writer` -- bounds-checked LEB128 and friends;
- :mod:`.types` -- value types and item dataclasses (imports, memories, globals, ...);
- :mod:`.opcodes` / :mod:`.instructions` -- instruction tables, ``Instr`` codec;
- :mod:`.code` -- ``FunctionBody`` and ``FunctionBuilder``;
- :mod:`.sections` -- item codecs per known section;
- :mod:`.module` -- the lazily decoded ``Module``;
- :mod:`.names`, :mod:`.producers` -- the ``name``, ``producers``, ``target_features`` custom
  sections.

See docs/binary-layer.md for the guarantees (exact round trip, laziness, DWARF safety).
"""

from threadify.errors import WasmDecodeError
from threadify.wasm.code import FunctionBody, FunctionBuilder
from threadify.wasm.instructions import (
    BlockType,
    Instr,
    TypeIndex,
    decode_instructions,
    encode_instruction,
    encode_instructions,
)
from threadify.wasm.module import Module
from threadify.wasm.names import NameSection
from threadify.wasm.producers import Producers, TargetFeatures
from threadify.wasm.types import (
    EXTERNREF,
    F32,
    F64,
    FUNCREF,
    I32,
    I64,
    V128,
    DataSegment,
    Export,
    ExternKind,
    FuncType,
    Global,
    GlobalType,
    Import,
    MemoryType,
    RawType,
    TableType,
    ValType,
    valtype_name,
)

__all__ = [
    "EXTERNREF", "F32", "F64", "FUNCREF", "I32", "I64", "V128",
    "BlockType", "DataSegment", "Export", "ExternKind", "FuncType", "FunctionBody",
    "FunctionBuilder", "Global", "GlobalType", "Import", "Instr", "MemoryType", "Module",
    "NameSection", "Producers", "RawType", "TableType", "TargetFeatures", "TypeIndex",
    "ValType", "WasmDecodeError", "decode_instructions", "encode_instruction",
    "encode_instructions", "valtype_name",
]
