"""WAT programs on the WASIX thread calls (``wasix_32v1``), for differential tests against Wasmer.

Each program prints numbers (decimal, one a line) that show what a call did: its errno, the
values it wrote, the order of events between threads. Every print is complete before the next
event the program waits for, so the output is deterministic on a correct host. The programs
wait for their threads through flags in memory (``memory.atomic.wait32``, or WASIX futexes where
those are under test) before they print anything that depends on them.

Memory map: 0..1023 flags and results; 1024.. ``ThreadStart`` records (64 bytes each:
``stack_upper, tls_base, start_funct, start_args, reserved[10], stack_size, guard_size``);
32768 + 64 * tid: each thread's print buffer; 60000 the main thread's print buffer.
"""

from __future__ import annotations

WASIX = "wasix_32v1"
TYPES = {
    "thread_spawn_v2": "(param i32 i32) (result i32)",
    "thread_spawn": "(param i32 i32) (result i32)",
    "thread_id": "(param i32) (result i32)",
    "thread_exit": "(param i32)",
    "thread_join": "(param i32) (result i32)",
    "thread_sleep": "(param i64) (result i32)",
    "thread_parallelism": "(param i32) (result i32)",
    "futex_wait": "(param i32 i32 i32 i32) (result i32)",
    "futex_wake": "(param i32 i32) (result i32)",
    "futex_wake_all": "(param i32 i32) (result i32)",
    "sched_yield": "(result i32)",
    "proc_exit2": "(param i32)",
}

LIB_IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"""
LIB = """
  (func $print_at (param $n i32) (param $buf i32) (local $p i32)
    (local.set $p (i32.add (local.get $buf) (i32.const 31)))
    (i32.store8 (local.get $p) (i32.const 10))
    (loop $d
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $d (local.get $n)))
    (i32.store (i32.add (local.get $buf) (i32.const 32)) (local.get $p))
    (i32.store (i32.add (local.get $buf) (i32.const 36))
      (i32.sub (i32.add (local.get $buf) (i32.const 32)) (local.get $p)))
    (drop (call $fd_write (i32.const 1) (i32.add (local.get $buf) (i32.const 32)) (i32.const 1)
      (i32.add (local.get $buf) (i32.const 40)))))
  (func $print (param $n i32)  ;; main thread only
    (call $print_at (local.get $n) (i32.const 60000)))
  (func $tprint (param $tid i32) (param $n i32)  ;; a spawned thread, buffer by its tid
    (call $print_at (local.get $n)
      (i32.add (i32.const 32768) (i32.shl (i32.and (local.get $tid) (i32.const 255))
                                          (i32.const 6)))))
  (func $await (param $addr i32)  ;; until the word at $addr is non-zero
    (block $done (loop $w
      (br_if $done (i32.atomic.load (local.get $addr)))
      (drop (memory.atomic.wait32 (local.get $addr) (i32.const 0) (i64.const -1)))
      (br $w))))
  (func $signal (param $addr i32)
    (i32.atomic.store (local.get $addr) (i32.const 1))
    (drop (memory.atomic.notify (local.get $addr) (i32.const -1))))
  (func $record (param $at i32) (param $stack_upper i32) (param $args i32)
    ;; a ThreadStart record at $at: stack_upper, start_args, stack_size 4096, guard_size 0
    (memory.fill (local.get $at) (i32.const 0) (i32.const 64))
    (i32.store (local.get $at) (local.get $stack_upper))
    (i32.store offset=12 (local.get $at) (local.get $args))
    (i32.store offset=56 (local.get $at) (i32.const 4096)))
"""


def program(body: str, uses: tuple[str, ...] = ("thread_spawn_v2",), memory: str = "shared",
            pages: int = 2) -> str:
    """A module importing ``uses`` from ``wasix_32v1``, with ``body`` (functions, exports)."""
    imports = "".join(f'\n  (import "{WASIX}" "{name}" (func ${name} {TYPES[name]}))'
                      for name in uses)
    if memory == "shared":
        mem = (f'\n  (import "env" "memory" (memory {pages} {pages} shared))'
               '\n  (export "memory" (memory 0))')
    else:
        mem = f'\n  (memory (export "memory") {pages})'
    return f"(module{imports}{LIB_IMPORTS}{mem}{LIB}{body})\n"


#: name -> WAT; each runs on Wasmer and on ``threadify run`` with the same result expected.
PROGRAMS: dict[str, str] = {}

PROGRAMS["spawn_basic"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $tprint (local.get $tid) (i32.const 1000))
    (call $tprint (local.get $tid) (local.get $tid))
    (call $tprint (local.get $tid) (local.get $arg))
    (call $tprint (local.get $tid) (i32.load offset=12 (local.get $arg)))
    (call $tprint (local.get $tid) (call $thread_id (i32.const 100)))
    (call $tprint (local.get $tid) (i32.load (i32.const 100)))
    (call $signal (i32.const 16)))
  (func (export "_start")
    (call $print (call $thread_id (i32.const 8)))
    (call $print (i32.load (i32.const 8)))
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 77))
    (i32.store (i32.const 104) (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $await (i32.const 16))
    (call $print (i32.const 2000))
    (call $print (i32.load (i32.const 104)))
    (call $print (i32.load (i32.const 12))))""", ("thread_spawn_v2", "thread_id"))

PROGRAMS["spawn_bad_pointers"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $signal (i32.load offset=12 (local.get $arg))))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 16))
    (call $record (i32.const 131008) (i32.const 40000) (i32.const 20))
    ;; the record's last byte past the end, far past, wrapping
    (call $print (call $thread_spawn_v2 (i32.const 131009) (i32.const 12)))
    (call $print (call $thread_spawn_v2 (i32.const 200000) (i32.const 12)))
    (call $print (call $thread_spawn_v2 (i32.const -4) (i32.const 12)))
    ;; ret_tid out of bounds
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 131070)))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const -1)))
    ;; the last 64 bytes of memory are a valid record
    (i32.store (i32.const 12) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 131008) (i32.const 12)))
    (call $await (i32.const 20))
    (call $print (i32.gt_u (i32.load (i32.const 12)) (i32.const 0))))""")

PROGRAMS["ret_tid_oob_thread_runs"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $signal (i32.const 16)))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 131070)))
    (drop (memory.atomic.wait32 (i32.const 16) (i32.const 0) (i64.const 2000000000)))
    (call $print (i32.atomic.load (i32.const 16))))""")

PROGRAMS["no_thread_start"] = program("""
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (i32.store (i32.const 12) (i32.const 555))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $print (i32.load (i32.const 12))))""")

PROGRAMS["not_shared"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (i32.store (i32.const 12) (i32.const 555))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $print (i32.load (i32.const 12))))""", memory="plain")

PROGRAMS["thread_exit_in_thread"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $await (i32.const 16))
    (call $tprint (local.get $tid) (i32.const 1000))
    (call $thread_exit (i32.const 5))
    (call $tprint (local.get $tid) (i32.const 1001)))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $signal (i32.const 16))
    (call $print (call $thread_join (i32.load (i32.const 12))))
    (call $print (i32.const 2000)))""", ("thread_spawn_v2", "thread_exit", "thread_join"))

PROGRAMS["thread_exit_in_main"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $await (i32.const 16))
    (drop (call $thread_sleep (i64.const 100000000)))
    (call $tprint (local.get $tid) (i32.const 1000)))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $signal (i32.const 16))
    (call $thread_exit (i32.const 3))
    (call $print (i32.const 2000)))""", ("thread_spawn_v2", "thread_exit", "thread_sleep"))

PROGRAMS["main_returns_threads_blocked"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $signal (i32.const 16))
    (drop (memory.atomic.wait32 (i32.const 4) (i32.const 0) (i64.const -1))))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $await (i32.const 16))
    (call $print (i32.const 2000)))""")

PROGRAMS["trap_in_thread"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $await (i32.const 16))
    (call $tprint (local.get $tid) (i32.const 1000))
    (unreachable))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $signal (i32.const 16))
    (drop (memory.atomic.wait32 (i32.const 4) (i32.const 0) (i64.const -1))))""")

PROGRAMS["proc_exit_in_thread"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $await (i32.const 16))
    (call $tprint (local.get $tid) (i32.const 1000))
    (call $exit (i32.const 9)))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $signal (i32.const 16))
    (drop (memory.atomic.wait32 (i32.const 4) (i32.const 0) (i64.const -1))))""")

PROGRAMS["futex_calls"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $signal (i32.const 16))
    (block $done (loop $w  ;; until the word at 200 is non-zero, sleeping on the WASIX futex
      (br_if $done (i32.atomic.load (i32.const 200)))
      (drop (call $futex_wait (i32.const 200) (i32.const 0) (i32.const 300) (i32.const 316)))
      (br $w)))
    (call $signal (i32.const 20)))
  (func (export "_start")
    (i32.store (i32.const 204) (i32.const 7))
    (i32.store8 (i32.const 300) (i32.const 0))  ;; OptionTimestamp: none
    ;; value differs: no wait
    (i32.store8 (i32.const 208) (i32.const 9))
    (call $print (call $futex_wait (i32.const 204) (i32.const 0) (i32.const 300) (i32.const 208)))
    (call $print (i32.load8_u (i32.const 208)))
    ;; value matches, 20 ms timeout
    (i32.store8 (i32.const 320) (i32.const 1))
    (i64.store (i32.const 328) (i64.const 20000000))
    (i32.store8 (i32.const 208) (i32.const 9))
    (call $print (call $futex_wait (i32.const 204) (i32.const 7) (i32.const 320) (i32.const 208)))
    (call $print (i32.load8_u (i32.const 208)))
    ;; wake with nobody waiting
    (i32.store8 (i32.const 208) (i32.const 9))
    (call $print (call $futex_wake (i32.const 204) (i32.const 208)))
    (call $print (i32.load8_u (i32.const 208)))
    (i32.store8 (i32.const 208) (i32.const 9))
    (call $print (call $futex_wake_all (i32.const 204) (i32.const 208)))
    (call $print (i32.load8_u (i32.const 208)))
    ;; a thread sleeps on the futex at 200 until woken
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $await (i32.const 16))
    (i32.atomic.store (i32.const 200) (i32.const 1))
    (call $print (call $futex_wake (i32.const 200) (i32.const 208)))
    (call $await (i32.const 20))
    (call $print (i32.const 2000))
    ;; bad pointers
    (call $print (call $futex_wait (i32.const 131072) (i32.const 0) (i32.const 300)
                                   (i32.const 208)))
    (call $print (call $futex_wait (i32.const 204) (i32.const 7) (i32.const 131070)
                                   (i32.const 208)))
    (call $print (call $futex_wait (i32.const 204) (i32.const 0) (i32.const 300)
                                   (i32.const 131072)))
    (call $print (call $futex_wake (i32.const 204) (i32.const 131072)))
    (call $print (call $futex_wake_all (i32.const 204) (i32.const 131072))))""",
    ("thread_spawn_v2", "futex_wait", "futex_wake", "futex_wake_all"))

PROGRAMS["futex_wake_all_threads"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (drop (i32.atomic.rmw.add (i32.const 16) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const 16) (i32.const -1)))
    (block $done (loop $w
      (br_if $done (i32.atomic.load (i32.const 200)))
      (drop (call $futex_wait (i32.const 200) (i32.const 0) (i32.const 300) (i32.const 316)))
      (br $w)))
    (drop (i32.atomic.rmw.add (i32.const 20) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const 20) (i32.const -1))))
  (func $await_n (param $addr i32) (param $n i32)
    (block $done (loop $w
      (br_if $done (i32.ge_u (i32.atomic.load (local.get $addr)) (local.get $n)))
      (drop (memory.atomic.wait32 (local.get $addr) (i32.atomic.load (local.get $addr))
                                  (i64.const -1)))
      (br $w))))
  (func (export "_start") (local $i i32)
    (loop $l
      (call $record (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 6)))
                    (i32.const 40000) (i32.const 0))
      (call $print (call $thread_spawn_v2
        (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 6))) (i32.const 12)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 4))))
    (call $await_n (i32.const 16) (i32.const 4))
    (i32.atomic.store (i32.const 200) (i32.const 1))
    (call $print (call $futex_wake_all (i32.const 200) (i32.const 208)))
    (call $await_n (i32.const 20) (i32.const 4))
    (call $print (i32.atomic.load (i32.const 20))))""",
    ("thread_spawn_v2", "futex_wait", "futex_wake_all"))

PROGRAMS["join_sleep_yield"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (drop (call $thread_sleep (i64.const 50000000)))
    (i32.atomic.store (i32.const 16) (i32.const 1)))
  (func (export "_start")
    (call $print (call $thread_sleep (i64.const 0)))
    (call $print (call $thread_sleep (i64.const 1000000)))
    (call $print (call $sched_yield))
    (call $print (call $thread_join (i32.const 999)))
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $print (call $thread_join (i32.load (i32.const 12))))
    (call $print (i32.atomic.load (i32.const 16))))""",
    ("thread_spawn_v2", "thread_join", "thread_sleep", "sched_yield"))

PROGRAMS["parallelism"] = program("""
  (func (export "_start")
    (call $print (call $thread_parallelism (i32.const 100)))
    (call $print (i32.load (i32.const 100)))
    (call $print (call $thread_parallelism (i32.const 131070))))""", ("thread_parallelism",))

PROGRAMS["tids_sequential"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32))
  (func (export "_start") (local $i i32)
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (loop $l
      (drop (call $thread_spawn (i32.const 1024) (i32.const 12)))
      (call $print (i32.load (i32.const 12)))
      (drop (call $thread_join (i32.load (i32.const 12))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 4)))))""",
    ("thread_spawn", "thread_join"))

PROGRAMS["not_shared_no_thread_start"] = program("""
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $print (call $thread_spawn_v2 (i32.const 131072) (i32.const 12))))""", memory="plain")

PROGRAMS["join_main_thread"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $signal (i32.const 20))
    (drop (call $thread_join (i32.const 1)))
    (call $signal (i32.const 16)))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $await (i32.const 20))
    ;; the thread is joining the main thread: it must not get past that while main runs
    (drop (memory.atomic.wait32 (i32.const 16) (i32.const 0) (i64.const 300000000)))
    (call $print (i32.atomic.load (i32.const 16))))""", ("thread_spawn_v2", "thread_join"))

PROGRAMS["huge_timeouts"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (if (i32.load offset=12 (local.get $arg))  ;; the record's start_args
      (then
        (call $signal (i32.const 20))
        (drop (call $thread_sleep (i64.const -1))))
      (else
        (i32.store8 (i32.const 320) (i32.const 1))
        (i64.store (i32.const 328) (i64.const -1))
        (call $signal (i32.const 24))
        (drop (call $futex_wait (i32.const 204) (i32.const 0) (i32.const 320)
                                (i32.const 208)))))
    (call $tprint (local.get $tid) (i32.const 1000)))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 1))
    (call $record (i32.const 1088) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $print (call $thread_spawn_v2 (i32.const 1088) (i32.const 12)))
    (call $await (i32.const 20))
    (call $await (i32.const 24))
    (drop (memory.atomic.wait32 (i32.const 4) (i32.const 0) (i64.const 200000000)))
    (call $print (i32.const 2000)))""", ("thread_spawn_v2", "thread_sleep", "futex_wait"))

PROGRAMS["preview1_bad_pointer"] = """(module
  (import "wasix_32v1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasix_32v1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ok\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 3))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; a misaligned iovec array: UNKNOWN (79), printed as a character ("O")
    (i32.store (i32.const 34) (i32.const 16)) (i32.store (i32.const 38) (i32.const 3))
    (i32.store8 (i32.const 16)
      (call $w (i32.const 1) (i32.const 34) (i32.const 1) (i32.const 44)))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; the iovec array runs past the end of memory
    (call $exit (call $w (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 8)))))
"""

PROGRAMS["misaligned_pointers"] = program("""
  (func (export "_start")
    (call $print (call $thread_id (i32.const 102)))
    (call $print (i32.load (i32.const 102)))
    (call $print (call $thread_parallelism (i32.const 106)))
    (i32.store8 (i32.const 300) (i32.const 0))
    (call $print (call $futex_wait (i32.const 202) (i32.const 5) (i32.const 300)
                                   (i32.const 208)))
    (call $print (call $futex_wait (i32.const 204) (i32.const 5) (i32.const 302)
                                   (i32.const 209)))
    (call $print (call $futex_wake (i32.const 202) (i32.const 209))))""",
    ("thread_id", "thread_parallelism", "futex_wait", "futex_wake"))

PROGRAMS["proc_exit2_in_thread"] = program("""
  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (call $await (i32.const 16))
    (call $proc_exit2 (i32.const 300)))
  (func (export "_start")
    (call $record (i32.const 1024) (i32.const 40000) (i32.const 0))
    (call $print (call $thread_spawn_v2 (i32.const 1024) (i32.const 12)))
    (call $signal (i32.const 16))
    (drop (memory.atomic.wait32 (i32.const 4) (i32.const 0) (i64.const -1))))""",
    ("thread_spawn_v2", "proc_exit2"))

PROGRAMS["wasix_proc_exit_200"] = """(module
  (import "wasix_32v1" "proc_exit" (func $e (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $e (i32.const 200))))
"""
