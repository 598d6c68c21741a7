"""Issue 25: pfdeploy never changes what is not its own, and every input byte gets one clear line.
Real devices, FIFOs, sockets, symlinks and foreign SQLite files (docs/reliability.md, "Outputs you
name" and "The fault battery"); each case checks the exit code, the one line, and that what was
there is intact (a device is still a device, a foreign database byte for byte the same)."""
from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pfdeploy.cli import main
from pfdeploy.errors import UsageError, UserError

from test_compare import synth_doc, write_run


def invoke(capsys, *args) -> tuple[int, str, str]:
    """The CLI in-process; (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(code: int, out: str, err: str, expected: int) -> str:
    assert code == expected, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pfdeploy: error:"), err
    return lines[0]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    from pfdeploy.store import write_run_file

    d = tmp_path_factory.mktemp("runs")
    return (write_run_file(synth_doc("base", 1), d / "base.json"),
            write_run_file(synth_doc("head", 2), d / "head.json"))


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from pfdeploy.store import open_store

    url = tmp_path_factory.mktemp("store") / "r.db"
    with open_store(url) as store:
        write_run(store, synth_doc("base", 1))
    return url


def _markdown(capsys, run_files, target) -> tuple[int, str, str]:
    b, h = run_files
    return invoke(capsys, "compare", b, h, "--fail-on", "never", "--markdown", target)


# ----------------------------------------------------------------------------- the output writer

def test_dev_full_is_one_line_and_stays_a_device(capsys, run_files):
    full = Path("/dev/full")
    if not full.exists() or not stat.S_ISCHR(full.stat().st_mode) or not os.access(full, os.W_OK):
        pytest.skip("no writable /dev/full here")
    line = one_line(*_markdown(capsys, run_files, full), 1)
    assert "cannot write --markdown /dev/full: No space left on device" in line
    assert stat.S_ISCHR(full.stat().st_mode) and full.stat().st_rdev == os.makedev(1, 7)


def test_dev_null_is_written_not_replaced(capsys, run_files):
    code, _, err = _markdown(capsys, run_files, "/dev/null")
    assert code == 0, err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_fifo_reader_receives_the_markdown(capsys, run_files, tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    code, _, err = _markdown(capsys, run_files, fifo)
    reader.join(60)
    assert code == 0, err
    assert got and got[0].startswith("### pfdeploy compare") and "resnet50" in got[0]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no temporary file beside it


def test_fifo_is_not_opened_by_the_early_check(tmp_path):
    """check_output_file runs before the work: opening the FIFO then would give its reader an
    empty document (and block without one)."""
    from pfdeploy.outputs import check_output_file

    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    assert check_output_file(fifo, "--markdown") == fifo  # returns at once: no reader needed


def test_unix_socket_gets_the_bytes(tmp_path):
    from pfdeploy.outputs import atomic_write_text

    path = tmp_path / "s.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    got = []

    def serve():
        conn, _ = srv.accept()
        with conn:
            chunks = []
            while data := conn.recv(65536):
                chunks.append(data)
            got.append(b"".join(chunks))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    atomic_write_text(path, "through the socket\n" * 1000, "--out")
    t.join(30)
    srv.close()
    assert got == [b"through the socket\n" * 1000]
    assert stat.S_ISSOCK(path.lstat().st_mode)


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_dev_stdout_and_fd_paths_go_to_the_descriptor(small_store, tmp_path):
    """`--out /dev/stdout` in a pipe: the CSV arrives on stdout, nothing is renamed in /dev."""
    for target in ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"):
        if not os.path.exists(target):
            continue
        r = subprocess.run([sys.executable, "-m", "pfdeploy", "results", "--store", str(small_store),
                            "--format", "csv", "--out", target], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("id,run_id,") and "resnet50" in r.stdout, target
    # a file the shell opened with >> keeps what was there: appended to, not replaced
    log = tmp_path / "log.csv"
    log.write_text("before\n")
    with open(log, "a") as fh:
        r = subprocess.run([sys.executable, "-m", "pfdeploy", "results", "--store", str(small_store),
                            "--format", "csv", "--out", "/dev/stdout"], stdout=fh, stderr=subprocess.PIPE,
                           text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    assert text.startswith("before\nid,run_id,") and "resnet50" in text


def test_symlink_is_followed_and_its_target_replaced_atomically(capsys, run_files, tmp_path):
    real = tmp_path / "docs" / "real.md"
    real.parent.mkdir()
    real.write_text("old report")
    os.chmod(real, 0o640)
    inode = real.stat().st_ino
    link = tmp_path / "link.md"
    link.symlink_to(Path("docs") / "real.md")  # relative, as `ln -s` makes them
    code, _, err = _markdown(capsys, run_files, link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == os.path.join("docs", "real.md")
    assert real.read_text().startswith("### pfdeploy compare") and real.stat().st_ino != inode  # renamed into place
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["real.md"]  # no temp file


def test_symlink_chain_dangling_link_and_loop(tmp_path):
    from pfdeploy.outputs import atomic_write_text, check_output_file

    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("c.md")  # dangling: the file it names is created
    atomic_write_text(tmp_path / "a", "new")
    assert (tmp_path / "c.md").read_text() == "new" and (tmp_path / "a").is_symlink()
    (tmp_path / "into-nowhere").symlink_to(tmp_path / "missing" / "x.md")
    with pytest.raises(UserError, match="symbolic link to .*missing/x.md, whose directory does not exist"):
        check_output_file(tmp_path / "into-nowhere")
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    with pytest.raises(UserError, match="loop1"):
        atomic_write_text(tmp_path / "loop1", "x")
    link = tmp_path / "to-stdout"
    link.symlink_to("/dev/stdout")
    from pfdeploy.outputs import output_target

    assert output_target(link).kind == "fd" and output_target(link).fd == 1


def test_block_device_and_directory_are_refused(tmp_path):
    from pfdeploy.outputs import atomic_write_text, check_output_file

    with pytest.raises(UserError, match="is a directory"):
        atomic_write_text(tmp_path, "x")
    blk = tmp_path / "disk"
    try:
        os.mknod(blk, stat.S_IFBLK | 0o600, os.makedev(7, 250))
    except OSError:
        pytest.skip("cannot make a block device node here (needs root)")
    for fn in (check_output_file, lambda p: atomic_write_text(p, "x")):
        with pytest.raises(UserError, match="is a block device"):
            fn(blk)
    assert stat.S_ISBLK(blk.lstat().st_mode)


def test_regular_file_still_replaced_atomically(tmp_path, capsys, run_files):
    md = tmp_path / "pr.md"
    md.write_text("old")
    inode = md.stat().st_ino
    code, _, err = _markdown(capsys, run_files, md)
    assert code == 0, err
    assert md.read_text().startswith("### pfdeploy compare") and md.stat().st_ino != inode


# ----------------------------------------------------------------------------- foreign stores

def _foreign_with_runs(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, started TEXT, note TEXT)")
    con.execute("INSERT INTO runs VALUES ('r1', '2025-01-01', 'another program')")
    con.commit()
    con.close()
    return path


def _foreign_without_runs(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    con.execute("INSERT INTO contacts VALUES ('Ada', '123')")
    con.commit()
    con.close()
    return path


def _zero_bytes(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _not_sqlite(path: Path) -> Path:
    path.write_bytes(b"this is somebody's notes, not a database\n" * 50)
    return path


FOREIGN = {"foreign-with-runs": _foreign_with_runs, "foreign-without-runs": _foreign_without_runs,
           "zero-bytes": _zero_bytes, "not-sqlite": _not_sqlite}
READ_VERBS = {
    "results": ["results"], "results-list": ["results", "--list"], "results-json": ["results", "--format", "json"],
    "results-csv": ["results", "--all", "--format", "csv"], "compare": ["compare", "base", "head"],
    "claims": ["claims"], "report": ["report", "--out", "{tmp}/site"], "store-info": ["store", "info"],
    "store-upgrade-dry-run": ["store", "upgrade", "--dry-run"],
}


@pytest.mark.parametrize("kind", list(FOREIGN))
@pytest.mark.parametrize("verb", list(READ_VERBS))
def test_read_only_verbs_leave_foreign_files_byte_identical(kind, verb, tmp_path, capsys):
    db = FOREIGN[kind](tmp_path / "other.db")
    before = sha(db)
    args = [a.replace("{tmp}", str(tmp_path)) for a in READ_VERBS[verb]]
    line = one_line(*invoke(capsys, *args, "--store", db), 1)
    assert str(db) in line
    assert {"foreign-with-runs": "another program's SQLite database (tables: runs)",
            "foreign-without-runs": "another program's SQLite database (tables: contacts)",
            "zero-bytes": "is empty", "not-sqlite": "not a database"}[kind] in line
    assert sha(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal, -shm, journal, site


@pytest.mark.parametrize("kind", ["foreign-with-runs", "foreign-without-runs", "not-sqlite"])
def test_writing_verbs_refuse_foreign_databases_unchanged(kind, tmp_path, capsys):
    from pfdeploy.store import open_store

    db = FOREIGN[kind](tmp_path / "other.db")
    before = sha(db)
    with pytest.raises(UserError, match="not a database|another program's"):
        open_store(db)
    line = one_line(*invoke(capsys, "bench", "--models", "resnet50", "--backends", "torch", "--store", db,
                            "--min-time", "0.2", "--max-time", "1"), 1)
    assert "another program's" in line or "not a database" in line
    line = one_line(*invoke(capsys, "store", "upgrade", "--store", db), 1)
    assert sha(db) == before and sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_journal_mode_of_a_foreign_database_is_left_alone(tmp_path):
    """The issue's first finding: the refusal used to come after `PRAGMA journal_mode = WAL`."""
    from pfdeploy.store import open_store

    db = _foreign_with_runs(tmp_path / "o.db")
    for readonly in (True, False):
        with pytest.raises(UserError):
            open_store(db, create=not readonly, readonly=readonly)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()


def test_empty_file_becomes_a_store_only_for_a_writing_verb(tmp_path):
    from pfdeploy.store import open_store

    db = _zero_bytes(tmp_path / "new.db")
    with pytest.raises(UserError, match="is empty"):
        open_store(db, create=False, readonly=True)
    assert db.stat().st_size == 0
    with open_store(db) as store:  # bench's open: an empty file it was pointed at is made a store
        store.begin_run({"tag": "first"})
    with open_store(db, create=False, readonly=True) as store:
        assert [r["tag"] for r in store.runs()] == ["first"]


def test_reading_a_pfdeploy_store_leaves_its_journal_mode(small_store, tmp_path):
    """A read-only verb on a store in rollback-journal mode (copied with `sqlite3 .backup`, say)
    does not switch it to WAL: reading changes nothing."""
    from pfdeploy.store import open_store

    copy = tmp_path / "copy.db"
    src = sqlite3.connect(small_store)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    dst.execute("PRAGMA journal_mode = DELETE")
    dst.close()
    src.close()
    before = sha(copy)
    with open_store(copy, create=False, readonly=True) as store:
        assert len(store.runs()) == 1
    assert sha(copy) == before


def test_a_device_or_fifo_as_store_is_refused(tmp_path):
    from pfdeploy.store import open_store

    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    for target in (fifo, Path("/dev/null")):
        with pytest.raises(UserError, match="is not a regular file"):
            open_store(target)
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)


# ----------------------------------------------------------------------------- user strings

BAD = "\udcff"  # what Python makes of the byte 0xff in an argument (surrogateescape)


@pytest.mark.parametrize("args", [
    ["bench", "--tag", BAD, "--models", "resnet50"],
    ["bench", f"--tag=x{BAD}y", "--models", "resnet50"],
    ["results", "--run", BAD],
    ["results", "--store", f"r{BAD}.db"],
    ["compare", BAD, "latest"],
    ["export", f"pf_resnet50{BAD}", "--to", "onnx"],
    ["report", "--out", f"site{BAD}"],
], ids=["tag", "tag=", "run", "store", "compare-ref", "model-name", "report-out"])
def test_non_utf8_text_is_a_usage_error(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_line(*invoke(capsys, *args), 2)
    assert "is not valid UTF-8" in line and "\\xff" in line
    assert list(tmp_path.iterdir()) == []  # no store, no site: refused before any work


def test_non_utf8_tag_from_a_real_shell(tmp_path):
    """The bytes as a shell passes them (`--tag $'\\xff'`), through a real process."""
    r = subprocess.run([sys.executable, "-m", "pfdeploy", "bench", "--tag", b"\xff", "--models", "resnet50",
                        "--store", str(tmp_path / "r.db")], capture_output=True, timeout=300)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2 and "Traceback" not in err, err
    assert "--tag '\\xff' is not valid UTF-8" in err and not (tmp_path / "r.db").exists()


def test_store_api_refuses_non_utf8_text(tmp_path):
    from pfdeploy.store import open_store

    with open_store(tmp_path / "r.db") as store:
        with pytest.raises(UsageError, match="run field tag"):
            store.begin_run({"tag": BAD})
        with pytest.raises(UsageError, match="run reference"):
            store.resolve_run(BAD)
        assert store.runs() == []
    from pfdeploy.validate import check_args, check_text

    assert check_text("feature/[wip] ü", "--tag") == "feature/[wip] ü"
    check_args(["bench", "--tag", "ünïcode"])


@pytest.mark.parametrize("address", ["foo", "foo:bar", "http://head:6379"])
def test_malformed_ray_address_is_a_usage_error(address, capsys):
    line = one_line(*invoke(capsys, "fleet", "nodes", "--address", address), 2)
    assert f"--address '{address}'" in line
