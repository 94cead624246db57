"""WAT programs for the host tests, in the shape threadify's output has (docs/abi.md).

Each program imports ``env.memory`` (shared), ``wasi.thread-spawn`` and the WASI functions it
uses, and exports ``memory``, ``_start`` and ``wasi_thread_start``. Memory map used by all:

  0   ready flag (set by the thread that is about to block)
  4   a word nobody ever notifies (blocking forever in wait32)
  8   done flag of a returning thread
  64  iovec for "E\\n" (buf 128, len 2); 72 nwritten; 128 the bytes "E\\n"
  256 a poll_oneoff clock subscription (1 hour); 320 the event; 360 nevents
  400 iovec for stdin (buf 512, len 16); 408 nread
  1024.. scratch for individual tests

"E\\n" on stdout marks the instant of the terminating event, so tests can time the rest.
"""

from __future__ import annotations

from tests.tooling import wat2wasm as wat2wasm  # re-exported: tests call wat.wat2wasm

HEADER = """
  (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "env" "memory" (memory {pages} {max_pages} shared))
  (export "memory" (memory 0))
"""

HELPERS = """
  (func $mark  ;; write "E\\n" to stdout
    (i32.store (i32.const 64) (i32.const 128))
    (i32.store (i32.const 68) (i32.const 2))
    (i32.store8 (i32.const 128) (i32.const 69))
    (i32.store8 (i32.const 129) (i32.const 10))
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72))))
  (func $await (param $addr i32)  ;; wait until the word at $addr is non-zero
    (block $done (loop $w
      (br_if $done (i32.atomic.load (local.get $addr)))
      (drop (memory.atomic.wait32 (local.get $addr) (i32.const 0) (i64.const 1000000)))
      (br $w))))
  (func $signal (param $addr i32)
    (i32.atomic.store (local.get $addr) (i32.const 1))
    (drop (memory.atomic.notify (local.get $addr) (i32.const -1))))
"""

# Code that never finishes on its own. It first sets the ready flag.
BLOCKERS = {
    "wait32": """
      (loop $b (drop (memory.atomic.wait32 (i32.const 4) (i32.const 0) (i64.const -1))) (br $b))""",
    "busy": """
      (loop $b (br $b))""",
    "poll_oneoff": """
      (i64.store (i32.const 256) (i64.const 7))
      (i32.store8 (i32.const 264) (i32.const 0))
      (i32.store (i32.const 272) (i32.const 1))
      (i64.store (i32.const 280) (i64.const 3600000000000))
      (i64.store (i32.const 288) (i64.const 0))
      (i32.store16 (i32.const 296) (i32.const 0))
      (loop $b
        (drop (call $poll (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 360)))
        (br $b))""",
    "fd_read_stdin": """
      (i32.store (i32.const 400) (i32.const 512))
      (i32.store (i32.const 404) (i32.const 16))
      (loop $b
        (drop (call $fd_read (i32.const 0) (i32.const 400) (i32.const 1) (i32.const 408)))
        (br $b))""",
}

EVENTS = {
    "proc_exit": "(call $exit (i32.const 17))",
    "trap": "unreachable",
    "return": "(return)",
}
EXPECTED = {"proc_exit": 17, "trap": 134, "return": 0}


WASI_TYPES = {
    "path_open": "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)",
    "path_rename": "(param i32 i32 i32 i32 i32 i32) (result i32)",
    "path_symlink": "(param i32 i32 i32 i32 i32) (result i32)",
    "path_create_directory": "(param i32 i32 i32) (result i32)",
    "path_unlink_file": "(param i32 i32 i32) (result i32)",
    "args_sizes_get": "(param i32 i32) (result i32)",
    "args_get": "(param i32 i32) (result i32)",
    "environ_sizes_get": "(param i32 i32) (result i32)",
    "environ_get": "(param i32 i32) (result i32)",
    "fd_readdir": "(param i32 i32 i32 i64 i32) (result i32)",
}


def module(body: str, pages: int = 1, max_pages: int = 1, wasi: tuple[str, ...] = ()) -> str:
    """A program with the standard imports plus the WASI functions named in ``wasi``."""
    extra = "".join(
        f'\n  (import "wasi_snapshot_preview1" "{name}" (func ${name} {WASI_TYPES[name]}))'
        for name in wasi)
    return ("(module" + HEADER.format(pages=pages, max_pages=max_pages) + extra + HELPERS
            + body + ")\n")


def block(kind: str) -> str:
    return "(call $signal (i32.const 0))" + BLOCKERS[kind]


def termination_program(ender: str, event: str, other: str) -> str:
    """``ender`` (main/thread) performs ``event`` while another thread is blocked in ``other``.

    thread x return: a spawned thread returns from ``wasi_thread_start`` (which ends only that
    thread), then the main thread returns from ``_start`` while the blocked thread still blocks.
    """
    if ender == "main":
        body = f"""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    {block(other)})
  (func (export "_start")
    (drop (call $spawn (i32.const 1)))
    (call $await (i32.const 0))
    (call $mark)
    {EVENTS[event]})"""
    elif event == "return":
        body = f"""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (if (i32.eq (local.get $arg) (i32.const 3))
      (then (call $signal (i32.const 8)) (return)))
    {block(other)})
  (func (export "_start")
    (drop (call $spawn (i32.const 1)))
    (call $await (i32.const 0))
    (drop (call $spawn (i32.const 3)))
    (call $await (i32.const 8))
    (call $mark))"""
    else:
        body = f"""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $await (i32.const 0))
    (call $mark)
    {EVENTS[event]})
  (func (export "_start")
    (drop (call $spawn (i32.const 2)))
    {block(other)})"""
    return module(body)


def spawn_join_program(count: int) -> str:
    """Main spawns ``count`` threads one after another, joining each; exit 3 if a spawn fails."""
    return module(f"""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $signal (local.get $arg)))
  (func (export "_start") (local $i i32)
    (loop $l
      (i32.atomic.store (i32.const 16) (i32.const 0))
      (if (i32.lt_s (call $spawn (i32.const 16)) (i32.const 1))
        (then (call $exit (i32.const 3))))
      (call $await (i32.const 16))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {count})))))""")


def assemble(text: str) -> bytes:
    return wat2wasm(text)


def alive_program(count: int) -> str:
    """Spawn ``count`` threads that stay alive until released, then one more after they end.

    Each thread stores its TID at 1024 + 4*index; spawn results go to 2048 + 4*index (index
    ``count`` is the extra spawn, retried until a slot is free). Both arrays, ``count + 1``
    little-endian i32 each, are written to stdout; the program then returns (exit 0).
    """
    n1 = count + 1
    return module(f"""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (i32.store (i32.add (i32.const 1024) (i32.shl (local.get $arg) (i32.const 2)))
               (local.get $tid))
    (drop (i32.atomic.rmw.add (i32.const 8) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const 8) (i32.const -1)))
    (call $await (i32.const 12))
    (drop (i32.atomic.rmw.add (i32.const 16) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const 16) (i32.const -1))))
  (func $await_count (param $addr i32) (param $n i32)
    (block $done (loop $w
      (br_if $done (i32.ge_u (i32.atomic.load (local.get $addr)) (local.get $n)))
      (drop (memory.atomic.wait32 (local.get $addr) (i32.atomic.load (local.get $addr))
                                  (i64.const 1000000)))
      (br $w))))
  (func (export "_start") (local $i i32) (local $r i32) (local $ok i32) (local $tries i32)
    (block $end (loop $l
      (br_if $end (i32.ge_u (local.get $i) (i32.const {count})))
      (local.set $r (call $spawn (local.get $i)))
      (i32.store (i32.add (i32.const 2048) (i32.shl (local.get $i) (i32.const 2)))
                 (local.get $r))
      (if (i32.gt_s (local.get $r) (i32.const 0))
        (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $await_count (i32.const 8) (local.get $ok))
    (call $signal (i32.const 12))
    (call $await_count (i32.const 16) (local.get $ok))
    (loop $retry
      (local.set $r (call $spawn (i32.const {count})))
      (local.set $tries (i32.add (local.get $tries) (i32.const 1)))
      (if (i32.and (i32.lt_s (local.get $r) (i32.const 1))
                   (i32.lt_u (local.get $tries) (i32.const 60000)))
        (then
          (drop (memory.atomic.wait32 (i32.const 4) (i32.const 0) (i64.const 1000000)))
          (br $retry))))
    (i32.store (i32.const {2048 + 4 * count}) (local.get $r))
    (if (i32.gt_s (local.get $r) (i32.const 0))
      (then (call $await_count (i32.const 16) (i32.add (local.get $ok) (i32.const 1)))))
    (i32.store (i32.const 64) (i32.const 1024))
    (i32.store (i32.const 68) (i32.const {4 * n1}))
    (i32.store (i32.const 72) (i32.const 2048))
    (i32.store (i32.const 76) (i32.const {4 * n1}))
    ;; one call per buffer: WASI hosts (wasmtime, ours) write only the first non-empty iovec
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 80)))
    (drop (call $fd_write (i32.const 1) (i32.const 72) (i32.const 1) (i32.const 80))))""")


def spawn_result_program(thread_start: str, start_func: str = "") -> str:
    """``_start`` exits 10 when ``thread-spawn`` returns a negative value, 11 otherwise."""
    return module(f"""
  {thread_start}
  {start_func}
  (func (export "_start")
    (call $exit (select (i32.const 10) (i32.const 11)
                        (i32.lt_s (call $spawn (i32.const 0)) (i32.const 0)))))""")
