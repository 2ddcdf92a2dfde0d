"""``MessageStore``'s maildir delivery (maildir(5): ``tmp/`` then a rename into ``new/``,
names unique on the host) and its failure cases."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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
