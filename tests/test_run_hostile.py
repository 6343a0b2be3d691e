"""`alertd run` under hostile input and conditions: garbage in the tailed file, secrets in URLs while the
receiver is down, private state files, no listening socket, forced polling."""
import os
import stat

from alertd_proc import TEST_RULES, AlertdRun, jsonl_line
from receivers import HTTPReceiver

SECRET = "s3cr3tT0ken9876543210"


def start(tmp_path, *args, **kw):
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES)
    return AlertdRun(tmp_path, "--output", "json", "--rules", str(rules), *args, **kw)


def test_garbage_never_crashes_the_daemon(tmp_path):
    log = tmp_path / "a.jsonl"
    log.write_text(jsonl_line(0, 1.0) + "\n")
    d = start(tmp_path, str(log))
    try:
        with open(log, "ab") as f:
            f.write(os.urandom(64 << 10).replace(b"\n", b"") + b"\n")   # binary garbage
            f.write(b'{"step": 1, "loss": "' + b"x" * (10 << 20) + b'"}\n')  # a 10 MB line
            f.write(b'{"step": 2, "loss": 1.0, "note": "\xff\xfe\xc3\x28"}\n')  # invalid UTF-8
            f.write(b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"\n")  # deep JSON
            f.write(b"\x00\x00\x00\n\r\r\n")
            f.write((jsonl_line(3, float("nan")) + "\n" + jsonl_line(4, 1.0) + "\n").encode())
        d.wait_for(lambda: len(d.events()) == 2, "the NaN after the garbage")
        assert d.proc.poll() is None
    finally:
        assert d.stop() == 0, d.stderr()
    assert [(e["rule"], e["state"], e["step"]) for e in d.events()] == [("LossNaN", "firing", 3),
                                                                        ("LossNaN", "resolved", 4)]
    assert "malformed" in d.stderr()


def listening_sockets(pid: int) -> list[str]:
    """Sockets of pid that listen (TCP LISTEN, or any bound UDP socket)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            rows = open(f"/proc/{pid}/net/{table}").read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            cols = row.split()
            if cols[9] in inodes and (table.startswith("udp") or cols[3] == "0A"):
                found.append(f"{table} {cols[1]}")
    return found


def test_secrets_never_printed_state_private_nothing_listens(tmp_path):
    log = tmp_path / "a.jsonl"
    log.write_text("")
    state = tmp_path / "state"
    with HTTPReceiver() as rx:
        rx.stop()  # down: every delivery fails and is logged
        d = start(tmp_path, "--state-dir", str(state), "--retry-base", "0.05", "--retry-max", "0.1",
                  "--drain-timeout", "0.5", "--notify", f"json://{rx.url}/hook?token=${{ALERTD_TOKEN}}",
                  "--notify", f"json://user:${{ALERTD_TOKEN}}@{rx.url}/x", str(log),
                  extra_env={"ALERTD_TOKEN": SECRET})
        try:
            log.write_text(jsonl_line(0, float("nan")) + "\n" + jsonl_line(1, 1.0) + "\n")
            d.wait_for(lambda: len(d.events()) == 2 and "failed" in d.stderr(), "failed deliveries logged")
            assert listening_sockets(d.proc.pid) == []
        finally:
            assert d.stop() == 0
    out, err = d.stdout(), d.stderr()
    assert "127.0.0.1" in err  # the failures name the destination ...
    assert SECRET not in out and SECRET not in err  # ... never its secret
    files = [os.path.join(root, f) for root, _, names in os.walk(state) for f in names]
    assert any(f.endswith("state.json") for f in files) and any("outbox" in f for f in files)
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
        assert SECRET.encode() not in open(f, "rb").read(), f
    for root, dirs, _ in os.walk(state):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root


def inotify_fds(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            pass
    return n


def test_forced_polling_sees_appends_without_inotify(tmp_path):
    counts = {}
    for mode, args in (("poll", ["--poll", "0.1"]), ("inotify", [])):
        log = tmp_path / f"{mode}.jsonl"
        log.write_text(jsonl_line(0, 1.0) + "\n")
        state = tmp_path / f"state-{mode}"
        d = start(tmp_path, "--state-dir", str(state), *args, str(log))
        try:
            d.wait_for(lambda: (state / "state.json").exists(), "the first pass")
            counts[mode] = inotify_fds(d.proc.pid)
            with open(log, "a") as f:
                f.write(jsonl_line(1, float("nan")) + "\n")
            d.wait_for(lambda: len(d.events()) == 1, "the appended NaN")
        finally:
            assert d.stop() == 0
    assert counts["poll"] == 0 and counts["inotify"] >= 1  # forced polling really does not watch
