"""The compile cache: keyed by content, reused when a file is unchanged, never stale.

A cached start maps compiled code instead of compiling, and skips even reading and hashing a
module whose size and times are those recorded when it was hashed (docs/performance.md, "The
host"). These tests pin the safety side of that: a module changed in place (same size, same
modification time) is recompiled, a corrupt cache file is replaced, and a cached run behaves as
the first.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.host.runner import RUN
from tests.tooling import wat2wasm
from threadify.host import loading
from threadify.native import cache as native_cache
from threadify.native import capi


def program(code: int, export: str) -> bytes:
    """Exits with ``code``; exports a function named ``export`` (same size for any letter)."""
    return wat2wasm(f"""(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (import "env" "memory" (memory 1 1 shared))
      (func (export "_start") (call $exit (i32.const {code})))
      (func (export "{export}"))
      (func (export "wasi_thread_start") (param i32 i32)))""")


def export_names(module: capi.Handle) -> set[str]:
    vec = capi.wasm_ptr_vec_t()
    capi.wasmtime_module_exports(module.ptr(), ctypes.byref(vec))
    names = {capi.name_of(capi.wasm_exporttype_name(vec.data[i])) for i in range(vec.size)}
    capi.wasm_exporttype_vec_delete(ctypes.byref(vec))
    return names


def load(path: Path) -> capi.Handle:
    return loading.compile_module(loading.make_engine(), loading.open_module(path))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("THREADIFY_CACHE_DIR", str(folder))
    return folder / "modules"


def test_cached_run_behaves_as_the_first(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "seven.wasm"
    path.write_bytes(program(7, "a"))
    env = {**os.environ, "THREADIFY_CACHE_DIR": str(cache.parent)}
    first = subprocess.run([*RUN, str(path)], capture_output=True, env=env, timeout=60)
    assert first.returncode == 7, first.stderr
    assert len(list(cache.glob("*.cwasm"))) == 1
    again = subprocess.run([*RUN, str(path)], capture_output=True, env=env, timeout=60)
    assert (again.returncode, again.stderr) == (7, first.stderr)


def test_unchanged_file_is_not_read_again(tmp_path: Path, cache: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native_cache, "SETTLED", -1.0)  # this test's file counts as settled at once
    path = tmp_path / "p.wasm"
    path.write_bytes(program(7, "a"))
    assert "a" in export_names(load(path))
    assert len(list((cache / "by-inode").iterdir())) == 1

    def unread(self: loading.Source) -> bytes:
        raise AssertionError("an unchanged, already hashed module was read again")

    monkeypatch.setattr(loading.Source, "data", property(unread))
    assert "a" in export_names(load(path))


def test_module_changed_in_place_is_recompiled(tmp_path: Path, cache: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Same size, same modification time, new content: the change time tells them apart."""
    monkeypatch.setattr(native_cache, "SETTLED", -1.0)
    path = tmp_path / "p.wasm"
    old, new = program(7, "a"), program(9, "b")
    assert len(old) == len(new) and old != new
    path.write_bytes(old)
    assert "a" in export_names(load(path))
    before = os.stat(path)
    with open(path, "r+b") as handle:  # same inode, same size
        handle.write(new)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    names = export_names(load(path))
    assert "b" in names and "a" not in names
    assert len(list(cache.glob("*.cwasm"))) == 2


def test_recently_changed_file_is_not_remembered(tmp_path: Path, cache: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Within one tick of the file system clock a rewrite can keep every time: hash again."""
    # (a settling time no loaded machine outlasts between writing the file and loading it)
    monkeypatch.setattr(native_cache, "SETTLED", 3600.0)
    path = tmp_path / "p.wasm"
    path.write_bytes(program(7, "a"))
    load(path)
    assert not (cache / "by-inode").exists() or not list((cache / "by-inode").iterdir())
    assert len(list(cache.glob("*.cwasm"))) == 1


def test_corrupt_cache_file_is_replaced(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "p.wasm"
    path.write_bytes(program(7, "a"))
    load(path)
    (compiled,) = cache.glob("*.cwasm")
    good = compiled.read_bytes()
    compiled.write_bytes(b"\x7fELF" + b"\0" * 60)
    assert "a" in export_names(load(path))
    assert compiled.read_bytes() == good


def test_key_depends_on_content_and_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    small, other = program(7, "a"), program(9, "a")
    assert native_cache._cache_key(small) != native_cache._cache_key(other)
    big = small + b"\0" * native_cache.SMALL_MODULE  # a large module takes the other digest
    key_of = native_cache._cache_key
    assert key_of(big).split("-")[0] != key_of(small).split("-")[0]
    key = native_cache._cache_key(small)
    monkeypatch.setattr(native_cache, "ENGINE_SETTINGS", "something else")
    assert native_cache._cache_key(small) != key


def test_module_read_from_a_pipe(tmp_path: Path, cache: Path) -> None:
    """A pipe can be read once: the header check must not consume what the compiler needs."""
    env = {**os.environ, "THREADIFY_CACHE_DIR": str(cache.parent)}
    proc = subprocess.run([*RUN, "/dev/stdin"], input=program(7, "a"), capture_output=True,
                          env=env, timeout=60)
    assert proc.returncode == 7, proc.stderr
    assert not (cache / "by-inode").exists()


def _age(path: Path, seconds_ago: float) -> None:
    """Make ``path`` look last used ``seconds_ago`` (the cache's recency is the mtime)."""
    import time

    when = time.time() - seconds_ago
    os.utime(path, (when, when))


def test_the_cache_is_bounded_and_keeps_the_recently_used(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing a new entry trims the least recently used ones until the bound holds; using an
    entry (a cache hit) makes it recent again."""
    modules = {code: program(code, "a") for code in (1, 2, 3, 4)}
    engine = loading.make_engine()
    for code in (1, 2, 3):
        native_cache.compile_module(engine, modules[code])
    files = {code: cache / (native_cache._cache_key(data) + ".cwasm")
             for code, data in modules.items()}
    for age, code in ((300, 1), (200, 2), (100, 3)):  # 1 is the oldest ...
        _age(files[code], age)
    native_cache.compile_module(engine, modules[1])  # ... until it is used again
    assert abs(os.stat(files[1]).st_mtime - os.stat(files[3]).st_mtime) > 50
    size = os.stat(files[1]).st_size
    monkeypatch.setenv("THREADIFY_CACHE_SIZE", str(3 * size + size // 2))  # room for three
    native_cache.compile_module(engine, modules[4])
    assert sorted(p.name for p in cache.glob("*.cwasm")) == sorted(
        files[code].name for code in (1, 3, 4))  # 2 was the least recently used


@pytest.mark.parametrize(("setting", "limit"), [
    ("", native_cache.DEFAULT_LIMIT), ("1000", 1000), ("64KiB", 64 << 10), ("2 MiB", 2 << 20),
    ("1GiB", 1 << 30), ("0", 0), ("lots", native_cache.DEFAULT_LIMIT),
    ("-5", native_cache.DEFAULT_LIMIT)])
def test_cache_size_setting(monkeypatch: pytest.MonkeyPatch, setting: str, limit: int) -> None:
    monkeypatch.setenv("THREADIFY_CACHE_SIZE", setting)
    assert native_cache.cache_limit() == limit


def test_trim_removes_stale_temporary_files_and_spares_fresh_ones(cache: Path) -> None:
    cache.mkdir(parents=True)
    stale, fresh = cache / "x.cwasm.1.tmp", cache / "y.cwasm.2.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    _age(stale, 2 * native_cache.STALE_TEMP)
    native_cache.trim(str(cache), 0)
    assert not stale.exists() and fresh.exists()


@pytest.mark.slow
def test_processes_sharing_a_tiny_cache_neither_crash_nor_overflow_it(tmp_path: Path,
                                                                     cache: Path) -> None:
    """Four runs at once, each compiling two modules of its own into a cache with room for
    about two: files vanish under the others' feet (trimmed, replaced); every run still ends
    with its program's exit code, and the cache ends within its bound."""
    paths = []
    for code in range(8):
        path = tmp_path / f"p{code}.wasm"
        path.write_bytes(program(code, "abcdefgh"[code]))
        paths.append(path)
    native_cache.compile_module(loading.make_engine(), paths[0].read_bytes())
    (one,) = cache.glob("*.cwasm")
    size = one.stat().st_size
    env = {**os.environ, "THREADIFY_CACHE_DIR": str(cache.parent),
           "THREADIFY_CACHE_SIZE": str(2 * size + size // 2)}
    script = ("import subprocess, sys\n"
              "for p in sys.argv[1:]:\n"
              f"    r = subprocess.run({RUN!r} + [p])\n"
              "    assert r.returncode == int(p[-6]), (p, r.returncode)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(paths[2 * i]),
                               str(paths[2 * i + 1]), str(paths[2 * i])],
                              env=env, stderr=subprocess.PIPE) for i in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    total = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    assert total <= 2 * size + size // 2


def test_a_file_being_written_does_not_count_against_the_bound(cache: Path) -> None:
    """Its writer trims the cache once the file is in place; until then the entries that fit
    the bound stay, however large the file being written is."""
    cache.mkdir(parents=True)
    kept = cache / "old.cwasm"
    kept.write_bytes(b"x" * 100)
    _age(kept, 1000)
    (cache / "new.cwasm.7.tmp").write_bytes(b"y" * 10_000)
    native_cache.trim(str(cache), 1000)
    assert kept.exists()
