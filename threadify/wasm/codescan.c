/*
 * codescan.c - inserts a fixed instruction sequence after every `global.set G` of a code
 * section, at native speed.  Compiled to wasm32 (build_codescan.sh) and run by threadify through
 * wasmtime; threadify/wasm/codescan.py is its only user and explains why it exists.
 *
 * The immediate layout of every opcode comes from the host (the Python decoder's own tables in
 * threadify/wasm/opcodes.py are copied into `kinds` before the first call), so this decoder and
 * the Python one agree on what an instruction is.  Anything it does not know -- an opcode
 * missing from the tables, a truncated body, a body that does not end exactly at its final
 * `end` -- makes `rewrite` return -1 and the caller falls back to the Python decoder, which
 * reports malformations with their offset.  As there, a body whose bytes hold no `global.set`
 * of the target (`may_write`) is copied without being decoded.
 *
 * Memory: [heap base: kinds 5 x 512][positions scratch][input][found][output], grown on
 * demand.  Two phases, so that the host can scan before it knows the sequence to insert:
 * `scan` finds the offsets, `emit` writes the new payload.
 */
#include <stddef.h>
#include <stdint.h>
#include <wasm_simd128.h>

enum kind {
    K_UNKNOWN = 0, K_NONE, K_BT, K_IDX, K_IDX2, K_BRT, K_MEM, K_MEML, K_LANE, K_I32, K_I64,
    K_F32, K_F64, K_V128, K_SELT, K_HT, K_ZERO, K_TT, K_BRC, K_PREFIX
};

#define TABLE 512             /* sub-opcodes per prefix table */
#define MAX_POSITIONS 262144  /* global.set instructions in one body */

extern unsigned char __heap_base;

static uint8_t *kinds_at;     /* [0]: single-byte opcodes, [1..4]: prefixes 0xFB..0xFE */
static uint32_t *positions;
static uint8_t *input;
static uint32_t input_cap;
static uint8_t *output;
static uint32_t output_cap;
static uint32_t checks_done, functions_changed, error_offset;

static uintptr_t heap_end(void) { return __builtin_wasm_memory_size(0) * 65536u; }

static int ensure(uintptr_t end) {
    uintptr_t have = heap_end();
    if (end <= have) return 1;
    uintptr_t pages = (end - have + 65535u) / 65536u;
    return __builtin_wasm_memory_grow(0, pages) != (size_t)-1;
}

static void setup(void) {
    if (kinds_at) return;
    uintptr_t base = ((uintptr_t)&__heap_base + 15u) & ~(uintptr_t)15u;
    kinds_at = (uint8_t *)base;
    positions = (uint32_t *)(base + 5 * TABLE);
    input = (uint8_t *)(base + 5 * TABLE + 4 * MAX_POSITIONS);
    ensure((uintptr_t)input);
}

/* Where the host writes the opcode tables (5 x 512 kind bytes). */
uint8_t *kinds(void) {
    setup();
    return kinds_at;
}

/* A buffer of `size` bytes for the code section's payload (input). */
uint8_t *reserve(uint32_t size) {
    setup();
    if (!ensure((uintptr_t)input + size)) return 0;
    input_cap = size;
    return input;
}

uint8_t *result(void) { return output; }
uint32_t checks(void) { return checks_done; }
uint32_t functions(void) { return functions_changed; }
uint32_t failed_at(void) { return error_offset; }

/* --- reading --------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
    int bad;
} reader;

static uint32_t u32(reader *r) {
    uint32_t value = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        if (r->p >= r->end) break;
        uint8_t b = *r->p++;
        value |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return value;
    }
    r->bad = 1;
    return 0;
}

static void leb(reader *r) { /* any LEB128 up to 64 bits (10 bytes) */
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end) break;
        if (!(*r->p++ & 0x80)) return;
    }
    r->bad = 1;
}

static void take(reader *r, uint32_t n) {
    if ((uint32_t)(r->end - r->p) < n) {
        r->bad = 1;
        r->p = r->end;
    } else {
        r->p += n;
    }
}

static uint8_t byte(reader *r) {
    if (r->p >= r->end) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static void valtype(reader *r) {
    uint8_t b = byte(r);
    if (b == 0x63 || b == 0x64) leb(r); /* (ref null? heaptype) */
}

static void blocktype(reader *r) {
    if (r->p < r->end && (*r->p == 0x63 || *r->p == 0x64)) r->p++;
    leb(r); /* 0x40, a value type byte, or an s33 type index */
}

static void memarg(reader *r) {
    uint32_t flags = u32(r);
    if (flags & 0x40) u32(r);
    leb(r);
}

/* Skips the immediates of an instruction of kind `k`; 0 when the kind is unknown. */
static int immediates(reader *r, uint8_t k) {
    uint32_t n;
    switch (k) {
    case K_NONE: return 1;
    case K_BT: blocktype(r); return 1;
    case K_IDX: case K_I32: case K_I64: case K_HT: leb(r); return 1;
    case K_IDX2: leb(r); leb(r); return 1;
    case K_BRT:
        n = u32(r);
        for (uint32_t i = 0; i <= n && !r->bad; i++) leb(r);
        return 1;
    case K_MEM: memarg(r); return 1;
    case K_MEML: memarg(r); take(r, 1); return 1;
    case K_LANE: case K_ZERO: take(r, 1); return 1;
    case K_F32: take(r, 4); return 1;
    case K_F64: take(r, 8); return 1;
    case K_V128: take(r, 16); return 1;
    case K_SELT:
        n = u32(r);
        for (uint32_t i = 0; i < n && !r->bad; i++) valtype(r);
        return 1;
    case K_TT:
        blocktype(r);
        n = u32(r);
        for (uint32_t i = 0; i < n && !r->bad; i++) {
            uint8_t c = byte(r);
            if (c < 2) leb(r);
            leb(r);
        }
        return 1;
    case K_BRC: take(r, 1); leb(r); leb(r); leb(r); return 1;
    default: return 0;
    }
}

/* Whether the body's bytes hold a `global.set` opcode followed by a byte that can begin an
 * encoding of an index whose low 7 bits are `low` (any LEB128 width).  A body without one
 * cannot write the global: it is copied as it is, without being decoded (as the Python path
 * does).  Sixteen bytes at a time; in a body that writes the stack pointer this usually stops
 * at its prologue. */
static int may_write(const uint8_t *p, uint32_t size, uint8_t low) {
    const uint8_t *end = p + size;
    const v128_t opcode = wasm_i8x16_splat(0x24);
    for (; end - p >= 17; p += 16) {
        uint32_t mask = (uint32_t)wasm_i8x16_bitmask(wasm_i8x16_eq(wasm_v128_load(p), opcode));
        for (; mask; mask &= mask - 1)
            if ((p[__builtin_ctz(mask) + 1] & 0x7f) == low) return 1;
    }
    for (; end - p >= 2; p++)
        if (*p == 0x24 && (p[1] & 0x7f) == low) return 1;
    return 0;
}

/* Fast paths for the common single-byte opcodes, derived from `kinds` before each scan:
 * F_NONE no immediate, F_LEB one LEB128, F_MEM a memory argument, F_SLOW anything else
 * (prefixes, global.set, block structure, other immediates). */
enum { F_NONE, F_LEB, F_MEM, F_SLOW };
static uint8_t fast[256];

static void derive_fast(void) {
    for (int op = 0; op < 256; op++) {
        uint8_t k = kinds_at[op], f = F_SLOW;
        if (k == K_NONE) f = F_NONE;
        else if (k == K_IDX || k == K_I32 || k == K_I64 || k == K_HT) f = F_LEB;
        else if (k == K_MEM) f = F_MEM;
        fast[op] = f;
    }
    /* global.set, end, delegate and the block openers need the slow path */
    const uint8_t special[] = {0x24, 0x0B, 0x18, 0x02, 0x03, 0x04, 0x06, 0x1F};
    for (unsigned i = 0; i < sizeof special; i++) fast[special[i]] = F_SLOW;
}

/* Skips one LEB128 of at most 10 bytes; 0 when it is longer.  It may read past the body (the
 * caller checks where the body ends): the buffer is followed by more memory, and a read past
 * the memory traps, which the host treats as "not done here". */
static const uint8_t *skip(const uint8_t *p) {
    for (int i = 0; i < 10; i++)
        if (!(*p++ & 0x80)) return p;
    return 0;
}

/* Offsets (from the body's first byte) right after each `global.set target`; -1 if the body
 * cannot be decoded here. */
static int32_t scan_body(const uint8_t *body, uint32_t size, uint32_t target) {
    reader r = {body, body + size, 0};
    uint32_t groups = u32(&r);
    for (uint32_t i = 0; i < groups && !r.bad; i++) {
        leb(&r);
        valtype(&r);
    }
    if (r.bad) return -1;
    int32_t found = 0;
    uint32_t depth = 0;
    const uint8_t *p = r.p, *end = r.end;
    while (p < end) {
        uint8_t op = *p++;
        uint8_t f = fast[op];
        if (f == F_NONE) continue;
        if (f == F_LEB) {
            if (!(p = skip(p))) return -1;
            continue;
        }
        if (f == F_MEM && *p < 0x40) { /* flags without a memory index, then the offset */
            if (!(p = skip(p)) || !(p = skip(p))) return -1;
            continue;
        }
        if (op == 0x0B && depth > 0) { /* end of a block */
            depth--;
            continue;
        }
        if ((op == 0x02 || op == 0x03 || op == 0x04) && *p >= 0x40 && *p < 0x80 &&
            *p != 0x63 && *p != 0x64) { /* block, loop, if with an empty or value type */
            depth++;
            p++;
            continue;
        }
        r.p = p;
        uint8_t k = kinds_at[op];
        if (k == K_PREFIX) {
            uint32_t sub = u32(&r);
            k = sub < TABLE ? kinds_at[(op - 0xFA) * TABLE + sub] : K_UNKNOWN;
        } else if (op == 0x24) { /* global.set */
            uint32_t index = u32(&r);
            if (r.bad) return -1;
            if (index == target) {
                if (found >= MAX_POSITIONS) return -1;
                positions[found++] = (uint32_t)(r.p - body);
            }
            p = r.p;
            continue;
        } else if (op == 0x0B || op == 0x18) { /* end, delegate */
            if (depth == 0) {
                if (op == 0x18) return -1;
                return r.p == r.end ? found : -1;
            }
            depth--;
            continue;
        } else if (op == 0x02 || op == 0x03 || op == 0x04 || op == 0x06 || op == 0x1F) {
            depth++; /* block, loop, if, try, try_table: their immediates follow */
        }
        if (!immediates(&r, k) || r.bad) return -1;
        p = r.p;
    }
    return -1;
}

/* --- writing --------------------------------------------------------------------------- */

static uint8_t *out_p;

static int room(uint32_t n) {
    uintptr_t end = (uintptr_t)out_p + n;
    if (end > (uintptr_t)output + output_cap) {
        if (!ensure(end + (end - (uintptr_t)output) / 4)) return 0;
        output_cap = (uint32_t)(heap_end() - (uintptr_t)output);
    }
    return 1;
}

static int put(const uint8_t *src, uint32_t n) {
    if (!room(n)) return 0;
    __builtin_memcpy(out_p, src, n);
    out_p += n;
    return 1;
}

static int put_u32(uint32_t v) {
    uint8_t buf[5];
    int n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        buf[n++] = b | (v ? 0x80 : 0);
    } while (v);
    return put(buf, (uint32_t)n);
}

/* Where the host writes the sequence to insert (at most 256 bytes). */
static uint8_t sequence_buffer[256];
uint8_t *sequence(void) { return sequence_buffer; }

/* Phase 1 -- `scan`: the payload offsets right after every `global.set target` of the first
 * `limit` bodies, in order, at `found` (after the input). */
static uint32_t *found;
static uint32_t found_count;
static uint32_t payload_size;

/*
 * Scans the code-section payload in `input[0..size)`.  Returns the number of `global.set
 * target` found in the first `limit` bodies, or -1 (`failed_at()`: the body's entry offset) when
 * a body cannot be decoded here.
 */
int32_t scan(uint32_t size, uint32_t target, uint32_t limit) {
    derive_fast();
    payload_size = size;
    found = (uint32_t *)(((uintptr_t)input + size + 15u) & ~(uintptr_t)15u);
    found_count = 0;
    error_offset = 0;
    reader r = {input, input + size, 0};
    uint32_t count = u32(&r);
    if (r.bad) return -1;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *entry = r.p;
        uint32_t body_size = u32(&r);
        const uint8_t *body = r.p;
        error_offset = (uint32_t)(entry - input);
        if (r.bad || (uint32_t)(r.end - body) < body_size) return -1;
        r.p = body + body_size;
        if (i >= limit || !may_write(body, body_size, (uint8_t)(target & 0x7f))) continue;
        int32_t n = scan_body(body, body_size, target);
        if (n < 0) return -1;
        if (n == 0) continue;
        if (!ensure((uintptr_t)(found + found_count + (uint32_t)n))) return -1;
        for (int32_t j = 0; j < n; j++)
            found[found_count++] = (uint32_t)(body - input) + positions[j];
    }
    if (r.p != r.end) return -1;
    error_offset = 0;
    return (int32_t)found_count;
}

/*
 * Phase 2: the payload with `sequence()[0..length)` inserted at every offset `scan` found.
 * Other bodies and the section's count are copied byte for byte.  Returns the new payload's
 * length (at `result()`), or -1.
 */
int32_t emit(uint32_t length) {
    const uint8_t *seq = sequence_buffer;
    if (length > sizeof sequence_buffer) return -1;
    checks_done = functions_changed = 0;
    output = (uint8_t *)(((uintptr_t)(found + found_count) + 15u) & ~(uintptr_t)15u);
    output_cap = 0;
    out_p = output;
    reader r = {input, input + payload_size, 0};
    uint32_t count = u32(&r);
    if (r.bad || !put(input, (uint32_t)(r.p - input))) return -1;
    uint32_t next = 0; /* index into found */
    const uint8_t *unchanged = r.p; /* unchanged entries since here are copied in one go */
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *entry = r.p;
        uint32_t body_size = u32(&r);
        const uint8_t *body = r.p;
        if (r.bad || (uint32_t)(r.end - body) < body_size) return -1;
        r.p = body + body_size;
        uint32_t body_at = (uint32_t)(body - input), end_at = body_at + body_size;
        uint32_t first = next;
        while (next < found_count && found[next] <= end_at) next++;
        uint32_t n = next - first;
        if (n == 0) continue;
        if (!put(unchanged, (uint32_t)(entry - unchanged))) return -1;
        unchanged = r.p;
        if (!put_u32(body_size + n * length)) return -1;
        uint32_t last = body_at;
        for (uint32_t j = first; j < next; j++) {
            if (!put(input + last, found[j] - last) || !put(seq, length)) return -1;
            last = found[j];
        }
        if (!put(input + last, end_at - last)) return -1;
        checks_done += n;
        functions_changed++;
    }
    if (!put(unchanged, (uint32_t)(r.p - unchanged))) return -1;
    return (int32_t)(out_p - output);
}

/*
 * Counts the `global.set target` instructions of the first `limit` bodies of the payload in
 * `input[0..size)` and checks that each is followed by `sequence[0..length)` (at `seq_offset` in
 * the input buffer).  Returns the count; -1 if a body cannot be decoded here, -2 if a write is
 * not followed by the sequence (`failed_at()`: that body's entry offset).
 */
int32_t count_followed(uint32_t size, uint32_t seq_offset, uint32_t length, uint32_t target,
                       uint32_t limit) {
    const uint8_t *sequence = input + seq_offset;
    int32_t total = 0;
    derive_fast();
    error_offset = 0;
    reader r = {input, input + size, 0};
    uint32_t count = u32(&r);
    if (r.bad) return -1;
    for (uint32_t i = 0; i < count && i < limit; i++) {
        const uint8_t *entry = r.p;
        uint32_t body_size = u32(&r);
        const uint8_t *body = r.p;
        error_offset = (uint32_t)(entry - input);
        if (r.bad || (uint32_t)(r.end - body) < body_size) return -1;
        r.p = body + body_size;
        int32_t found = scan_body(body, body_size, target);
        if (found < 0) return -1;
        for (int32_t j = 0; j < found; j++) {
            uint32_t at = positions[j];
            if (body_size - at < length) return -2;
            for (uint32_t k = 0; k < length; k++)
                if (body[at + k] != sequence[k]) return -2;
        }
        total += found;
    }
    error_offset = 0;
    return total;
}
