"""The Unit contract (``opskit.runtime.base.Unit``), held against every runtime.

What roles and operations rely on, whatever runs the service: a started unit says so and its
output is in its logs; a stop is graceful within the grace period and a kill after it; a
stopped unit takes no signal; exec is bounded by its timeout; files go in and come out whole;
a scratch folder is gone when the check is done; log files are read rotation first."""

from __future__ import annotations

import io
import signal
import threading
import time

import pytest

from opskit.errors import OpskitError
from opskit.polling import deadline_in, poll_until

from .conftest import READY_LINE, Subject


def _printed(unit, text: str) -> bool:
    return bool(
        poll_until(
            lambda: True if any(text in line.text for line in unit.logs()) else None,
            deadline_in(15),
        )
    )


def test_a_started_unit_runs_and_its_output_is_in_its_logs(subject: Subject):
    unit = subject.started()
    status = unit.status()
    assert status.running and status.active, status
    assert _printed(unit, READY_LINE), [line.text for line in unit.logs()]
    assert all(line.service == "polite" for line in unit.logs())
    assert any(READY_LINE in text for text in unit.log_tail(5))


def test_a_polite_unit_stops_within_its_grace_and_a_second_stop_finds_nothing(subject: Subject):
    unit = subject.started()
    assert _printed(unit, READY_LINE)  # its trap is set once it has printed
    result = unit.stop(signal.SIGTERM, 5.0)
    assert result.was_running and not result.killed, result
    assert not unit.status().running
    again = unit.stop(signal.SIGTERM, 5.0)
    assert not again.was_running, again


def test_a_unit_that_ignores_its_stop_signal_is_killed_after_its_grace(subject: Subject):
    unit = subject.started("stubborn")
    assert _printed(unit, READY_LINE)
    began = time.monotonic()
    result = unit.stop(signal.SIGTERM, 1.0)
    assert result.was_running and result.killed, result
    assert not unit.status().running
    assert time.monotonic() - began >= 0.9


def test_a_stopped_unit_takes_no_signal_and_has_no_processes_or_stats(subject: Subject):
    unit = subject.started()
    assert unit.processes(), "a running unit has processes"
    assert unit.stats() is not None
    unit.stop(signal.SIGTERM, 5.0)
    assert unit.send_signal(signal.SIGTERM) is False
    assert unit.processes() == []
    assert unit.stats() is None


def test_exec_reports_output_and_exit_code(subject: Subject):
    unit = subject.started()
    done = unit.exec(["echo", "contract", "exec"])
    assert (done.exit_code, done.output.strip()) == (0, "contract exec")
    assert unit.exec(["false"]).exit_code not in (0, None)


def test_exec_returns_at_its_timeout_whatever_the_command_does(subject: Subject):
    unit = subject.started()
    began = time.monotonic()
    result = unit.exec(["sleep", "30"], timeout=0.5)
    assert result.exit_code is None and result.output == "timed out after 0.5s"
    assert time.monotonic() - began < 5


def test_a_file_goes_in_and_comes_out_whole(subject: Subject):
    unit = subject.started()
    data = bytes(range(256)) * 300
    path = f"{subject.folder}/contract.bin"
    unit.write_file(path, io.BytesIO(data), len(data))
    with unit.open_file(path) as handle:
        assert handle.read() == data


def test_a_short_source_is_refused_and_a_directory_is_not_a_file(subject: Subject):
    unit = subject.started()
    with pytest.raises(OpskitError, match="early"):
        unit.write_file(f"{subject.folder}/short.bin", io.BytesIO(b"abc"), 10)
    with pytest.raises(OpskitError), unit.open_file(subject.folder) as handle:
        handle.read()
    with pytest.raises(OpskitError), unit.open_file(f"{subject.folder}/absent") as handle:
        handle.read()


def test_a_scratch_folder_is_readable_by_the_unit_and_gone_after(subject: Subject):
    unit = subject.started()
    with unit.scratch({"conf/a.txt": b"scratch-bytes"}, dirs=("logs",)) as folder:
        seen = unit.exec(["cat", f"{folder}/conf/a.txt"])
        assert (seen.exit_code, seen.output) == (0, "scratch-bytes")
    assert unit.exec(["cat", f"{folder}/conf/a.txt"]).exit_code not in (0, None)


def test_log_file_lines_come_rotation_first(subject: Subject):
    unit = subject.started()
    path = f"{subject.folder}/app.log"
    for name, text in ((f"{path}.1", b"older\n"), (path, b"newer 1\nnewer 2\n")):
        unit.write_file(name, io.BytesIO(text), len(text))
    assert list(unit.file_lines(path)) == ["older", "newer 1", "newer 2"]
    assert list(unit.file_lines(f"{subject.folder}/none.log")) == []


def test_the_environment_holds_the_compose_environment(subject: Subject):
    assert subject.unit("polite").environment()["CONTRACT_VAR"] == "from-compose"


def test_an_address_is_a_host_and_a_port(subject: Subject):
    host, port = subject.unit("polite").address(8080)
    assert isinstance(host, str) and host and isinstance(port, int) and 0 < port < 65536


def test_a_commands_output_streams_out_whole(subject: Subject):
    unit = subject.started()
    data = b"".join(b"line %06d of a dump\n" % n for n in range(50_000))  # ≈ 1 MB
    path = f"{subject.folder}/dump.txt"
    unit.write_file(path, io.BytesIO(data), len(data))
    with unit.exec_stream(["cat", path]) as stream:
        assert stream.read() == data


def test_a_log_file_is_followed_as_it_grows(subject: Subject):
    unit = subject.started()
    path = f"{subject.folder}/follow.log"
    unit.write_file(path, io.BytesIO(b"before\n"), 7)
    seen: list[str] = []
    follower = unit.follow_file(path)

    def follow() -> None:
        for line in follower:
            seen.append(line)
            if "after 2" in line:
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    time.sleep(1.0)  # the follower is at the end of the file
    grown = b"before\nafter 1\nafter 2\n"
    unit.write_file(path, io.BytesIO(grown), len(grown))
    reader.join(15)
    assert not reader.is_alive(), seen
    assert "after 1" in seen and "after 2" in seen
    follower.close()  # stops the unit's tail, where there is one


def test_output_is_read_from_a_cursor_none_twice_none_lost(subject: Subject):
    """``read_output``: a first read starts at the end; later reads give what came since —
    every line once (the request metrics count them)."""
    unit = subject.started("chatty")
    assert _printed(unit, "tick 1")
    _old, cursor = unit.read_output(None)
    assert _old == []
    fake = hasattr(unit, "print")
    seen: list[str] = []
    for round_ in range(4):
        if fake:  # the fake writes what the test says
            for n in range(3):
                unit.print(f"tick {100 + 3 * round_ + n}")
        time.sleep(0.7)
        lines, cursor = unit.read_output(cursor)
        seen += lines
    ticks = [int(line.split()[1]) for line in seen if line.startswith("tick ")]
    assert len(ticks) >= 6, seen
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), ticks  # in order, no gap
