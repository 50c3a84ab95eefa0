"""What the command line says must be true of what it did (a docs QA pass's
findings): the progress lines, a latency mean over no changes, a tiny run's
wall time, replay's one mode, options with no help text, where a refused
option came from, and a log path that cannot be created."""

from __future__ import annotations

import os
import re

import pytest

from asyncnet.cli import format_summary, main

from .test_hardening import SHORT, in_process, one_error_line, scenario

# the hardening tests' short scenario, its input held constant
CONSTANT = SHORT.format(duration=12).replace('kind = "xor"\nhold = 5', 'kind = "constant"')
assert 'kind = "constant"' in CONSTANT


def test_progress_lines_come_one_per_tenth_from_ten_percent(tmp_path, capsys):
    r = in_process(["run", scenario(tmp_path, 40), "--no-log"], capsys)
    assert r.returncode == 0
    pcts = [int(m) for m in re.findall(r"^short: (\d+)% \(t=", r.stderr, re.M)]
    assert pcts == list(range(10, 101, 10)), r.stderr


def test_a_constant_input_says_no_change_was_traced(tmp_path, capsys):
    """The input never changes: no latency to average (it printed "n/a by the forward
    wave, n/a by its credit (mean of 0 changes)")."""
    sc = tmp_path / "still.toml"
    sc.write_text(CONSTANT)
    r = in_process(["run", str(sc), "--no-log", "-q"], capsys)
    assert r.returncode == 0
    line = next(x for x in r.stdout.splitlines() if "input change -> first weight update" in x)
    assert "none traced" in line and "n/a" not in line and "mean of 0" not in line
    log = tmp_path / "still.log"
    assert main(["run", str(sc), "--log", str(log), "-q"]) == 0
    capsys.readouterr()
    assert main(["stats", str(log)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("latency"))
    assert "none traced" in line and "0 changes" not in line


def test_a_changing_input_still_gives_its_mean(tmp_path, capsys):
    r = in_process(["run", scenario(tmp_path, 40), "--no-log", "-q"], capsys)
    assert re.search(r"by the forward wave, [\d.]+ by its credit \(mean of [1-9]\d* changes\)",
                     r.stdout), r.stdout


@pytest.mark.parametrize("wall, shown", [(0.0042, "4.2 ms wall"), (0.35, "0.35 s wall"),
                                         (0.01, "0.01 s wall"), (0.0, "0 ms wall")])
def test_a_tiny_run_wall_time_is_not_zero_seconds(wall, shown):
    s = {"scenario": "x", "path": "x.toml", "rule": "diffusion", "seed": 1,
         "network": {"populations": 3, "projections": 2, "neurons": 6, "synapses": 9,
                     "depth": 2},
         "messages": {"total": 10, "forward": 4, "delta": 4, "control": 2},
         "locality": {"share": 1.0, "one_link": 10}, "link_delay": {},
         "latency": {"input_to_first_update_forward": None,
                     "input_to_first_update_credit": None, "input_changes_traced": 0},
         "wall_seconds": wall, "messages_per_second": None}
    assert f"speed     {shown}," in format_summary(s)


def test_replay_names_verify_as_required(tmp_path, capsys):
    log = tmp_path / "s.log"
    assert main(["run", scenario(tmp_path, 10), "--log", str(log), "-q"]) == 0
    r = in_process(["replay", str(log)], capsys)
    one_error_line(r, "--verify")
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    usage = capsys.readouterr().out
    assert re.search(r"usage: asyncnet replay \[-h\] --verify ", usage), usage


@pytest.mark.parametrize("command, flags", [("replay", ("--json", "-q, --quiet")),
                                            ("stats", ("--json",)),
                                            ("run", ("--json", "-q, --quiet")),
                                            ("resume", ("--json", "-q, --quiet"))])
def test_every_option_has_a_help_text(capsys, command, flags):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    for flag in flags:
        # argparse puts the help on the flag's line, or the next when the flag is long
        m = re.search(rf"^  {re.escape(flag)}( [A-Z_]+)?(\s+\S.*)?\n(\s{{10,}}\S.*)?", text, re.M)
        assert m and (m.group(2) or m.group(3)), (flag, text)


def test_a_checkpoint_dir_from_the_scenario_names_the_file(tmp_path, capsys):
    sc = tmp_path / "short.toml"
    sc.write_text(open(scenario(tmp_path, 20)).read() + '[output]\ncheckpoint_dir = "ck"\n')
    line = one_error_line(in_process(["run", str(sc), "--no-log", "-q"], capsys))
    assert f"{sc}: [output] checkpoint_dir needs --checkpoint-every" in line


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/proc/self"),
                    reason="root writing under /proc: a path the up-front checks let through")
def test_a_log_that_cannot_be_created_says_so(tmp_path, capsys):
    """Root may write anywhere, so ``/proc/x.log`` passes the checks before the run;
    opening it fails, and the message said the run stopped mid-write."""
    line = one_error_line(in_process(["run", scenario(tmp_path, 10), "-q",
                                      "--log", "/proc/asyncnet-x.log"], capsys))
    assert "cannot create the event log" in line and "before anything was written" in line
