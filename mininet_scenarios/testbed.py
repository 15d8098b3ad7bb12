"""The whole system on one machine: a controller process driving the emulated network."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from controller.process import ControllerProcess
from mininet_scenarios.emulation import Emulation, emulate
from topology.scenario import load_scenario

log = logging.getLogger(__name__)


@dataclass
class Testbed:
    """A controller process and the emulated network it drives."""

    __test__ = False  # not a pytest test class, despite the name

    ctl: ControllerProcess
    emu: Emulation


@contextlib.contextmanager
def testbed(
    scenario: Path,
    state_file: Path | None = None,
    *,
    instance_hosts: bool = True,
    shaping: bool | None = None,
) -> Iterator[Testbed]:
    """Controller + Mininet for `scenario`, every switch connected; always torn down.

    `instance_hosts=False`: the instances are left to site agents (see mininet_scenarios.agents).
    `shaping`: links shaped to their capacity (default: the scenario's `network.shaping`).
    """
    with (
        ControllerProcess(scenario, state_file=state_file) as ctl,
        emulate(
            load_scenario(scenario),
            controller=("127.0.0.1", ctl.of_port),
            instance_hosts=instance_hosts,
            shaping=shaping,
        ) as emu,
    ):
        ctl.wait_switches()
        try:
            yield Testbed(ctl, emu)
        except BaseException:
            log.error("controller log (end):\n%s", ctl.log_tail(60))
            raise
