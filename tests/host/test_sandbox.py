"""Path resolution beneath a preopen, with openat2 and with the fallback walk (old kernels)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from threadify.host import sandbox


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "walk":
        monkeypatch.setattr(sandbox, "_have_openat2", False)
    yield request.param


@pytest.fixture
def root(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    base = tmp_path / "root"
    (base / "sub" / "deeper").mkdir(parents=True)
    (base / "in.txt").write_text("inside")
    (base / "link_dir").symlink_to("../outside")
    (base / "link_file").symlink_to("../outside/secret.txt")
    (base / "abs_link").symlink_to(tmp_path / "outside" / "secret.txt")
    (base / "sub" / "up_link").symlink_to("../in.txt")
    (base / "sub" / "deeper" / "chain").symlink_to("../up_link")
    (base / "loop").symlink_to("loop")
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def _read(dirfd: int, path: str) -> str:
    fd = sandbox.open_beneath(dirfd, path, os.O_RDONLY)
    try:
        return os.read(fd, 100).decode()
    finally:
        os.close(fd)


@pytest.mark.parametrize("path", ["in.txt", "./in.txt", "sub/../in.txt", "sub/up_link",
                                  "sub/deeper/chain", "sub/deeper/../../in.txt"])
def test_paths_inside_resolve(mode: str, root: int, path: str) -> None:
    assert _read(root, path) == "inside"


@pytest.mark.parametrize("path", ["../outside/secret.txt", "sub/../../outside/secret.txt",
                                  "/etc/passwd", "link_dir/secret.txt", "link_file",
                                  "abs_link", ".."])
def test_paths_outside_are_refused(mode: str, root: int, path: str) -> None:
    with pytest.raises(sandbox.Escape):
        _read(root, path)


@pytest.mark.parametrize("path", ["in.txt/", "in.txt/.", "sub/up_link/"])
def test_a_file_named_as_a_directory_is_not_one(mode: str, root: int, path: str) -> None:
    with pytest.raises(NotADirectoryError):
        _read(root, path)


def test_symlink_loops_end(mode: str, root: int) -> None:
    with pytest.raises(OSError):
        _read(root, "loop")


def test_split_parent_refuses_escaping_parents(mode: str, root: int) -> None:
    with pytest.raises(sandbox.Escape):
        sandbox.split_parent(root, "../outside/x")
    with pytest.raises(sandbox.Escape):
        sandbox.split_parent(root, "link_dir/x")
    parent, name = sandbox.split_parent(root, "sub/new")
    os.close(parent)
    assert name == "new"


@pytest.mark.parametrize(("path", "strip", "parent_is", "name"), [
    ("sub/new", False, "sub", "new"),
    ("sub/deeper/", False, "sub/deeper", "."),   # a trailing slash names the directory itself
    ("sub/deeper/.", False, "sub/deeper", "."),
    ("sub/deeper//", True, "sub", "deeper"),     # unless slashes are stripped first (mkdir)
    ("sub/..", False, ".", "."),                 # a trailing ".." is that directory
    (".", False, ".", "."),
    ("in.txt", False, ".", "in.txt"),
])
def test_split_parent_follows_the_trailing_slash_rule(mode: str, root: int, path: str,
                                                      strip: bool, parent_is: str,
                                                      name: str) -> None:
    parent, last = sandbox.split_parent(root, path, strip_slashes=strip)
    try:
        expected = os.stat(parent_is, dir_fd=root)
        assert (os.fstat(parent).st_ino, last) == (expected.st_ino, name)
    finally:
        os.close(parent)


def test_split_parent_of_a_file_path_with_a_slash_is_not_a_directory(mode: str,
                                                                      root: int) -> None:
    with pytest.raises(NotADirectoryError):
        sandbox.split_parent(root, "in.txt/")
    with pytest.raises(FileNotFoundError):
        sandbox.split_parent(root, "")


def test_an_empty_path_names_nothing(mode: str, root: int) -> None:
    with pytest.raises(FileNotFoundError):
        sandbox.open_beneath(root, "", os.O_RDONLY)


def test_a_trailing_slash_follows_a_final_link_that_is_not_to_be_followed(
        mode: str, root: int, tmp_path: Path) -> None:
    """``O_NOFOLLOW`` leaves a final link alone, but a trailing slash asks for the directory it
    leads to (what ``path_filestat_get`` of ``"./link/"`` relies on), as the kernel resolves
    it."""
    (tmp_path / "root" / "dir_link").symlink_to("sub")
    flags = os.O_PATH | os.O_NOFOLLOW
    for path, is_link in (("dir_link", True), ("dir_link/", False), ("./dir_link/.", False)):
        fd = sandbox.open_beneath(root, path, flags)
        try:
            assert stat.S_ISLNK(os.fstat(fd).st_mode) == is_link, path
        finally:
            os.close(fd)


@pytest.mark.parametrize(("path", "error"), [("new/", IsADirectoryError),
                                             ("sub/new//", IsADirectoryError),
                                             ("new/.", FileNotFoundError),
                                             ("new/./", FileNotFoundError)])
def test_creating_through_a_trailing_slash_creates_nothing(mode: str, root: int, path: str,
                                                           error: type[OSError]) -> None:
    """``open`` makes files, not directories: a missing name followed by a slash is
    ``EISDIR``, one followed by ``/.`` a directory that is not there."""
    with pytest.raises(error):
        sandbox.open_beneath(root, path, os.O_CREAT | os.O_WRONLY)
    for folder in (".", "sub"):
        with pytest.raises(FileNotFoundError):
            os.stat(f"{folder}/new", dir_fd=root, follow_symlinks=False)


def test_the_fallback_walk_resolves_as_the_kernel_does(root: int, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """3000 paths made of the tree's names, links (inside, escaping, dangling, looping, to
    ``.``), ``.``, ``..``, empty parts and trailing slashes, opened with each way of following
    or not: the walk (old kernels) finds the same file or the same error as ``openat2``."""
    import errno
    import random

    base = tmp_path / "root"
    (base / "dir_link").symlink_to("sub")
    (base / "dangling").symlink_to("nothing")
    (base / "self").symlink_to(".")
    (base / "up").symlink_to("sub/..")
    names = ["in.txt", "sub", "deeper", "..", ".", "", "up_link", "chain", "loop", "dir_link",
             "link_dir", "missing", "dangling", "self", "up", "link_file", "abs_link"]
    flag_sets = [os.O_RDONLY, os.O_PATH, os.O_PATH | os.O_NOFOLLOW, os.O_RDONLY | os.O_DIRECTORY,
                 os.O_RDONLY | os.O_NOFOLLOW, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW]

    def outcome(path: str, flags: int) -> object:
        try:
            fd = sandbox.open_beneath(root, path, flags)
        except sandbox.Escape:
            return "escape"
        except OSError as exc:
            return errno.errorcode[exc.errno or 0]
        st = os.fstat(fd)
        os.close(fd)
        return st.st_ino, st.st_mode

    rng = random.Random(7)
    cases = [("/".join(rng.choice(names) for _ in range(rng.randint(1, 4)))
              + rng.choice(["", "", "", "/"]), rng.choice(flag_sets)) for _ in range(3000)]
    kernel = [outcome(path, flags) for path, flags in cases]
    monkeypatch.setattr(sandbox, "_have_openat2", False)
    walked = [outcome(path, flags) for path, flags in cases]
    differing = [(case, k, w) for case, k, w in zip(cases, kernel, walked, strict=True) if k != w]
    assert not differing, differing[:5]
    assert len(set(map(str, kernel))) > 10  # (the paths do reach many files and errors)
