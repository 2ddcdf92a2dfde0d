"""``MessageStore``'s maildir delivery (maildir(5): ``tmp/`` then a rename into ``new/``,
names unique on the host) and its failure cases."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from smtpproto.builtin_server import storage
from smtpproto.builtin_server.storage import MessageStore, StoredMessage

MESSAGE = StoredMessage("a@x.test", ("b@y.test",), b"Subject: s\r\n\r\nbody\r\n")
NAME = re.compile(r"(?P<id>[0-9]+\.M[0-9]{1,6}P[0-9]+Q[0-9]+)\.(?P<host>[^/:]+)")


def test_each_message_gets_a_unique_maildir_name_and_nothing_stays_in_tmp(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    first, second = MessageStore(maildir=maildir), MessageStore(maildir=maildir)
    ids = [store.store(MESSAGE) for _ in range(50) for store in (first, second)]
    names = sorted(path.name for path in (maildir / "new").iterdir())
    assert len(set(ids)) == 100 and len(names) == 100
    assert sorted(ids) == sorted(NAME.fullmatch(name)["id"] for name in names)  # type: ignore[index]
    assert all(f"P{os.getpid()}Q" in name for name in names)
    assert list((maildir / "tmp").iterdir()) == [] and list((maildir / "cur").iterdir()) == []
    assert all(path.read_bytes() == MESSAGE.data for path in (maildir / "new").iterdir())


def test_the_host_name_in_a_maildir_name_has_slash_and_colon_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.socket, "gethostname", lambda: "a/b:c")
    store = MessageStore(maildir=tmp_path)
    queue_id = store.store(MESSAGE)
    (stored,) = (tmp_path / "new").iterdir()
    assert stored.name == f"{queue_id}.a\\057b\\072c"


def test_removed_maildir_folders_are_made_again(tmp_path: Path) -> None:
    store = MessageStore(maildir=tmp_path / "Maildir")
    store.store(MESSAGE)
    for sub in ("new", "tmp", "cur"):
        for path in (tmp_path / "Maildir" / sub).iterdir():
            path.unlink()
        (tmp_path / "Maildir" / sub).rmdir()
    store.store(MESSAGE)
    assert len(list((tmp_path / "Maildir" / "new").iterdir())) == 1


def test_an_existing_file_in_tmp_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MessageStore(maildir=tmp_path)
    store.store(MESSAGE)  # makes the folders
    monkeypatch.setattr(storage.time, "time_ns", lambda: 1_700_000_000_123_456_789)
    monkeypatch.setattr(storage._Process, "deliveries", iter([7, 7]))
    store.store(MESSAGE)
    (tmp_path / "tmp" / f"1700000000.M123456P{os.getpid()}Q7.{store._host}").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        store.store(MESSAGE)
    assert (
        tmp_path / "tmp" / f"1700000000.M123456P{os.getpid()}Q7.{store._host}"
    ).read_bytes() == b"x"
    assert len(store.messages) == 2  # the refused one is not kept


def test_a_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MessageStore(maildir=tmp_path)
    store.store(MESSAGE)

    def full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "write", full)
    with pytest.raises(OSError, match="No space"):
        store.store(MESSAGE)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert len(list((tmp_path / "new").iterdir())) == 1 and len(store.messages) == 1


_FORK_SCRIPT = """
import os, sys
from smtpproto.builtin_server.storage import MessageStore, StoredMessage
store = MessageStore(maildir=sys.argv[1])
message = StoredMessage("a@x.test", ("b@y.test",), b"body\\r\\n")
store.store(message)
pid = os.fork()
if pid == 0:
    store.store(message)
    os._exit(0)
os.waitpid(pid, 0)
print(os.getpid(), pid)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (POSIX)")
def test_a_forked_child_names_its_messages_with_its_own_pid(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FORK_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parent, child = done.stdout.split()
    names = sorted(path.name for path in (tmp_path / "new").iterdir())
    assert len(names) == 2
    assert any(f"P{parent}Q1." in name for name in names)
    assert any(f"P{child}Q1." in name for name in names)  # its own pid, its own count


def test_a_store_that_keeps_nothing_still_writes_each_message(tmp_path: Path) -> None:
    store = MessageStore(maildir=tmp_path / "Maildir", mbox=tmp_path / "mbox", keep=False)
    for _ in range(3):
        store.store(MESSAGE)
    assert store.messages == []
    assert len(list((tmp_path / "Maildir" / "new").iterdir())) == 3
    assert (tmp_path / "mbox").read_bytes().count(b"\nFrom ") + 1 == 3
    with pytest.raises(ValueError, match="keeps no messages"):
        store.require_kept()
    MessageStore().require_kept()  # the default keeps them


@pytest.mark.parametrize("keep", [0, 1, "no", None])
def test_keep_must_be_a_bool(keep: object) -> None:
    with pytest.raises(ValueError, match="keep must be True or False"):
        MessageStore(keep=keep)  # type: ignore[arg-type]


# -- prepare(): a destination that cannot take a message is refused up front ----------


def test_prepare_makes_the_folders_and_leaves_nothing_behind(tmp_path: Path) -> None:
    store = MessageStore(maildir=tmp_path / "Maildir", mbox=tmp_path / "mbox")
    store.prepare()
    for sub in ("tmp", "new", "cur"):
        assert list((tmp_path / "Maildir" / sub).iterdir()) == []
    assert (tmp_path / "mbox").read_bytes() == b""  # an empty mbox holds no message
    store.prepare()  # again on what exists: still fine, still empty
    assert store.store(MESSAGE) and (tmp_path / "mbox").read_bytes().startswith(b"From ")


@pytest.mark.parametrize(
    ("layout", "maildir", "fragment"),
    [
        ("file", "Maildir", "not a folder"),
        ("", "missing/Maildir", "parent folder does not exist"),
        ("tmp-file", "Maildir", "not a folder (%/Maildir/tmp)"),
        ("new-file", "Maildir", "not a folder (%/Maildir/new)"),
        ("cur-file", "Maildir", "not a folder (%/Maildir/cur)"),
    ],
)
def test_prepare_refuses_a_maildir_that_cannot_take_a_message(
    tmp_path: Path, layout: str, maildir: str, fragment: str
) -> None:
    if layout == "file":
        (tmp_path / "Maildir").write_bytes(b"")
    elif layout:
        (tmp_path / "Maildir").mkdir()
        (tmp_path / "Maildir" / layout.split("-")[0]).write_bytes(b"")
    store = MessageStore(maildir=tmp_path / maildir, keep=False)
    with pytest.raises(storage.StorageError) as caught:
        store.prepare()
    assert caught.value.strerror is not None
    assert caught.value.strerror.startswith(f"maildir {tmp_path / maildir}: ")
    assert fragment.replace("%", str(tmp_path)) in caught.value.strerror
    if layout:  # what prepare() foresaw: the delivery fails too (a missing parent
        with pytest.raises(OSError):  # is made by a delivery: only serve refuses it)
            store.store(MESSAGE)


@pytest.mark.parametrize(("make", "fragment"), [("dir", "is a folder"), ("", "parent folder")])
def test_prepare_refuses_an_mbox_that_cannot_take_a_message(
    tmp_path: Path, make: str, fragment: str
) -> None:
    mbox = tmp_path / "mbox" if make else tmp_path / "missing" / "mbox"
    if make:
        mbox.mkdir()
    with pytest.raises(storage.StorageError, match=fragment):
        MessageStore(mbox=mbox).prepare()


def _prepare_unprivileged(store: MessageStore) -> str:
    """``store.prepare()``'s error text when run without the right to write (as
    ``nobody`` in a forked child when the tests run as root, whom no mode stops)."""
    if os.geteuid() != 0:
        try:
            store.prepare()
        except storage.StorageError as error:
            return str(error.strerror)
        return "prepared"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        result = "prepared"
        try:
            os.setgid(65534)
            os.setuid(65534)
            store.prepare()
        except storage.StorageError as error:
            result = str(error.strerror)
        except BaseException as error:
            result = f"unexpected: {error!r}"
        os.write(write, result.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    return text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and POSIX permissions")
@pytest.mark.parametrize("sub", ["tmp", "new", "cur"])
def test_prepare_refuses_a_maildir_folder_it_cannot_write(tmp_path: Path, sub: str) -> None:
    top = Path(tempfile.mkdtemp(prefix="smtpproto-perm-"))  # traversable by nobody
    try:
        top.chmod(0o755)
        maildir = top / "Maildir"
        for folder in ("tmp", "new", "cur"):
            (maildir / folder).mkdir(parents=True)
            (maildir / folder).chmod(0o777)
        maildir.chmod(0o755)
        (maildir / sub).chmod(0o555)  # this one cannot take a file
        text = _prepare_unprivileged(MessageStore(maildir=maildir, keep=False))
        assert text.startswith(f"maildir {maildir}: Permission denied"), text
        assert text.endswith(f"({maildir / sub})"), text
        (maildir / sub).chmod(0o777)
        assert _prepare_unprivileged(MessageStore(maildir=maildir, keep=False)) == "prepared"
        assert all(list((maildir / folder).iterdir()) == [] for folder in ("tmp", "new", "cur"))
    finally:
        shutil.rmtree(top)
