"""The command line: exit codes and messages a user can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from mecmig.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[2]


def test_check_config_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "scenarios" / "default.yaml")]) == EXIT_OK
    assert "ok - scenario 'default'" in capsys.readouterr().out


def test_check_config_counts_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "scenarios" / "edge.yaml")]) == EXIT_OK
    out = capsys.readouterr().out
    assert "2 sites, 3 switches, 2 links, 3 instances, 0 chains, 1 UE\n" in out


def test_check_config_names_the_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "scenarios" / "default.yaml").read_text().replace("cpus: 2", "cpus: x"))
    assert main(["check-config", str(bad)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "sites[0].compute.cpus" in err and "sites[1].compute.cpus" in err


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == EXIT_USAGE


def test_show_prints_ports(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(ROOT / "scenarios" / "three-sites.yaml")]) == EXIT_OK
    out = capsys.readouterr().out
    assert "s1 - core" in out and "hmec3" in out


def test_admit(capsys: pytest.CaptureFixture[str]) -> None:
    three = str(ROOT / "scenarios" / "three-sites.yaml")
    assert main(["admit", three, "mec1", "mec3", "60Mbit"]) == EXIT_OK
    assert "via s1 > core > s3" in capsys.readouterr().out
    assert main(["admit", three, "mec1", "mec3", "200Mbit"]) == EXIT_FAILED
    assert "bottleneck link s1->core" in capsys.readouterr().out
    assert main(["admit", three, "mec1", "nowhere", "1Mbit"]) == EXIT_FAILED


def test_commands_people_run_are_quiet_and_services_log() -> None:
    import logging

    from mecmig.cli import configure_logging

    try:
        configure_logging("migrate", verbose=False)
        assert logging.getLogger().level == logging.WARNING
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)  # no line per request
        configure_logging("controller", verbose=False)
        assert logging.getLogger().level == logging.INFO
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        configure_logging("migrate", verbose=True)
        assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)
    finally:
        configure_logging("migrate", verbose=False)


def test_a_warning_is_printed_once_after_mininet_is_imported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Mininet makes loggers created after it is imported carry their own stderr handler
    import logging

    import mininet_scenarios.emulation  # noqa: F401
    from mecmig.cli import configure_logging

    assert logging.getLoggerClass() is logging.Logger
    logger = logging.getLogger("mecmig.test.after-mininet")
    assert not logger.handlers
    configure_logging("bench", False)
    logger.warning("only once")
    assert capsys.readouterr().err.count("only once") == 1


@pytest.mark.parametrize("bench", ["migration", "reservation"])
def test_harness_benchmarks_take_resume(bench: str) -> None:
    """--resume reaches the harness (args.resume); without it raw/ starts empty."""
    from mecmig.cli import _parser

    assert _parser().parse_args(["bench", bench, "--resume"]).resume is True
    assert _parser().parse_args(["bench", bench]).resume is False
