"""The `mecmig` command line.

Exit codes: 0 success; 1 the thing asked for failed (bad scenario, unreachable host, refused
admission); 2 the command line itself is wrong; 3 the environment is not ready (not root, no OVS).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from ground import defaults
from mecmig.instances_args import (
    INSTANCE_COMMANDS,
    add_controller_options,
    add_instance_parsers,
    add_site_options,
)
from migration.strategies import HOLD_MODES, STRATEGIES
from orchestration.chain_record import PATTERNS
from topology.scenario import ScenarioError, load_scenario

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 1, 2, 3
DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "default.yaml"
EDGE_SCENARIO = DEFAULT_SCENARIO.with_name("edge.yaml")
RESULTS = Path(__file__).resolve().parent.parent / "results"

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mecmig",
        description="Network-aware live migration of MEC services and service function chains.",
        epilog="Exit codes: 0 ok, 1 failed, 2 bad command line, 3 environment not ready.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "check-config",
        help="validate a scenario file",
        description="Validate a scenario file; print every problem with its key path. Exit 0/1.",
    )
    p.add_argument("scenario", type=Path, help="scenario YAML file")

    p = sub.add_parser(
        "show",
        help="print a scenario's sites, links, ports and hosts",
        description="Print the topology a scenario describes, with the port numbers the emulation "
        "and the controller use.",
    )
    p.add_argument("scenario", type=Path, nargs="?", default=DEFAULT_SCENARIO)

    p = sub.add_parser(
        "admit",
        help="can RATE go from SRC to DST? on which path?",
        description="Admission check on the scenario's declared link capacities (no reservations "
        "in force). SRC and DST are site, switch, instance or UE names; RATE like 40Mbit.",
    )
    p.add_argument("scenario", type=Path)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("rate", help="bit rate, e.g. 40Mbit, 1.5Gbit, 500kbit")

    p = sub.add_parser(
        "demo",
        help="run a scenario for real: controller, Mininet, containers, live migration",
        description="Start the controller and a Mininet network of userspace OVS switches for the "
        "scenario, check every host reaches every other, then (if the scenario has a memhog "
        "instance, as scenarios/edge.yaml does) start it as a runc container, probe it from the "
        "UE over one TCP connection every 5 ms, and live-migrate it to another site and back. "
        "Needs root. Exit 0 if everything worked.",
    )
    p.add_argument("--scenario", type=Path, default=EDGE_SCENARIO)
    p.add_argument(
        "--strategies",
        default="postcopy,precopy",
        help="comma-separated, one migration each, alternating between two sites "
        "(cold, precopy, postcopy, hybrid)",
    )

    p = sub.add_parser(
        "controller",
        help="run the SDN controller (os-ken app + REST API)",
        description="Run the os-ken controller for a scenario: topology discovery, forwarding, "
        "SFC steering, bandwidth reservations (OpenFlow 1.3 meters) and relocation, with the REST "
        "API under /v1 (OpenAPI at /v1/openapi.json). State (reservations, host locations) is kept "
        "in --state-file and survives restarts.",
    )
    p.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    p.add_argument(
        "--rest-host",
        default=defaults.REST_HOST,
        help="REST listen address (default %(default)s: this machine only; any other address "
        "needs --token-file)",
    )
    p.add_argument("--rest-port", type=int, default=defaults.REST_PORT)
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="the REST API's token (one line, a file of mode 600): every request must carry it "
        "in the X-Mecmig-Token header, else 401; clients read it from the file "
        "MECMIG_CONTROLLER_TOKEN_FILE names (default: that variable's file, if set)",
    )
    p.add_argument(
        "--of-port", type=int, default=defaults.OPENFLOW_PORT, help="OpenFlow listen port"
    )
    p.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="where state is kept (default /var/lib/mecmig/controller-<scenario>.json)",
    )
    p.add_argument(
        "--agent-token-file",
        type=Path,
        action=_AgentTokenFile,
        metavar="PATH",
        help="the site agents' shared token (a file of mode 600), sent by /v1/migrations to "
        "agents that listen on TCP (sets MECMIG_AGENT_TOKEN_FILE)",
    )

    _bench_parser(sub)

    p = sub.add_parser(
        "agent",
        help="run a MEC site's agent (checkpoint, transfer, restore instances)",
        description="Serve one site's agent API: it runs the site's service containers (runc), "
        "checkpoints and restores them with CRIU, and sends/receives migration traffic to/from "
        "other agents on TCP port 7100. The API is on a Unix socket (--uds) and/or TCP (--listen).",
    )
    p.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    p.add_argument("--site", required=True, help="the site this agent serves")
    p.add_argument(
        "--uds",
        type=Path,
        help="Unix socket (default, when neither --listen nor the scenario's agent: says "
        "otherwise: /run/mecmig/agents/<scenario>-<site>.sock)",
    )
    p.add_argument(
        "--listen",
        metavar="IP:PORT",
        help="serve the API on TCP (e.g. 10.0.0.1:7070; default: the scenario's agent: "
        "http://IP:PORT for this site, if it has one); a non-loopback address needs "
        "--token-file",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="shared secret (one line, file mode 600) that requests over non-loopback TCP "
        "must carry in the X-Mecmig-Token header; create it with `install -m 600 /dev/null "
        "PATH && head -c 32 /dev/urandom | base64 > PATH`",
    )
    p.add_argument("--address", help="this agent's IP for migration traffic (default: scenario)")
    p.add_argument("--root", type=Path, help="where instances live (default /var/lib/mecmig/...)")
    p.add_argument(
        "--files-from",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a directory an instance's spec may copy files from into its /data (repeatable; "
        "also MECMIG_AGENT_FILES_FROM, directories separated by ':'); the project's workloads/ "
        "always, nothing else by default: a spec naming any other host file gets 400",
    )
    p.add_argument(
        "--root-netns-pid",
        type=int,
        default=None,
        help="plumb containers in the network namespace of this PID, a process in the root "
        "namespace (where OVS is), when the agent itself runs inside a Mininet host; the agent "
        "refuses to start if the site's bridge is not in that namespace (or, without this "
        "option, in its own)",
    )

    p = sub.add_parser(
        "emulate",
        help="run a scenario's network in Mininet with a site agent per MEC host, until Ctrl-C",
        description="Build the scenario's network in Mininet (userspace OVS) and connect it to a "
        "running `mecmig controller` (start that first), start one site agent inside each MEC "
        "host (on its Unix socket, or with --token-file on the host's own address, port "
        f"{defaults.AGENT_PORT}, as on separate machines), start the scenario's instances at "
        "their home sites, print where everything is, and stay up until Ctrl-C (then everything "
        "it started is removed). Meanwhile, `mecmig migrate` moves instances from another shell. "
        "Exit 0 after a clean stop, 1 if something failed, 3 if there is no controller.",
    )
    p.add_argument("--scenario", type=Path, default=EDGE_SCENARIO, help="(default: %(default)s)")
    p.add_argument(
        "--controller", default=defaults.CONTROLLER_URL, help="controller REST URL (%(default)s)"
    )
    p.add_argument(
        "--of-port",
        type=int,
        default=defaults.OPENFLOW_PORT,
        help="the controller's OpenFlow port on 127.0.0.1 (%(default)s)",
    )
    p.add_argument(
        "--deploy",
        nargs="*",
        metavar="INSTANCE",
        help="instances to start (default: every instance of the scenario; none: --deploy)",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        help="agents listen on their MEC hosts' addresses and require this token (chmod 600)",
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds (else Ctrl-C)")

    p = sub.add_parser(
        "migrate",
        help="live-migrate an instance to another site",
        description="Live-migrate INSTANCE (a service of the scenario, running at some site) to "
        "--to SITE through the site agents, with a bandwidth reservation and the traffic switch "
        "from the controller. Exit 0 when it completed, 1 when it was rolled back (the service "
        "runs at the source with its state) or failed.",
    )
    p.add_argument("instance")
    _migration_options(p)
    p.add_argument(
        "--command",
        dest="start_command",  # `command` is the subcommand's
        metavar="CMD",
        help="strategy filesystem only (seed 003's SFP: the configuration stays behind): the "
        "command the destination starts, split as a shell would (default: the image's; "
        "refused, nothing moved, if it names none)",
    )
    p = sub.add_parser(
        "migrate-chain",
        help="move a whole service function chain to another site (seed 000's patterns)",
        description="Move every function of CHAIN (a chain of the scenario) to --to SITE, each "
        "with its state, through the site agents; the chain's steering moves once, in one "
        "change of the controller, while every function is frozen and its traffic held. "
        "Patterns (seed 000): async (each function's migration unsupervised, in parallel), "
        "wait-for-me (every step for all functions at once: one shared freeze), round-robin "
        "(every step for one function after the other: least CPU at a time, longest). "
        "--network-aware reserves bandwidth per function's migration, its final iteration "
        "sized for the downtime budget. A failure of any function before every one serves at "
        "the destination rolls the whole chain back. Exit 0 when it completed, 1 when it was "
        "rolled back (every function runs at its source with its state) or failed, 2 bad "
        "options, 3 no agent answers.",
    )
    p.add_argument("chain")
    p.add_argument(
        "--pattern",
        choices=PATTERNS,
        default="wait-for-me",
        help="how the functions' migrations run together (default %(default)s)",
    )
    p.add_argument(
        "--network-aware",
        action="store_true",
        help="reserve bandwidth for each function's copy (admission against the links' "
        "capacity; the final iteration sized from the one before to fit the budget)",
    )
    _migration_options(p)
    add_instance_parsers(sub, DEFAULT_SCENARIO)
    from mecmig.image_pack import add_parser as add_image_parser

    add_image_parser(sub)
    from mecmig.mobility_cli import add_parser as add_mobility_parser

    add_mobility_parser(sub)

    sub.add_parser(
        "cleanup",
        help="remove what a crashed mecmig emulation left behind",
        description="Remove what a crashed mecmig run left. From each emulation recorded under "
        "/run/mecmig whose process is gone: its agents and every process left in its hosts' "
        "network namespaces, its host shells, its links' veths (<switch>-eth<N>, the agents' "
        "v<bridge>p<N>, the management veths mgmt-<site>), its bridges and its agents' "
        "sockets. Then mecmig's runc containers (runc roots under /run/mecmig/runc), network "
        "namespaces (mecmig-*), instance directories (/var/lib/mecmig/sites), agent sockets "
        "nobody serves, and CRIU or runc processes working in those directories. What a running "
        "emulation or agent uses is kept, and said so; nothing else is touched. Exit 0.",
    )
    return parser


class _AgentTokenFile(argparse.Action):
    """`mecmig controller --agent-token-file PATH`: checked now (exit 2 if unusable), handed to
    /v1/migrations (orchestration.service.mount) as MECMIG_AGENT_TOKEN_FILE."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        import os

        from ground.token import AGENT_TOKEN_ENV, TokenFileError, read_token_file

        path = Path(str(values)).resolve()
        try:
            read_token_file(path)
        except TokenFileError as exc:
            parser.error(str(exc))
        os.environ[AGENT_TOKEN_ENV] = str(path)
        setattr(namespace, self.dest, path)


def _migration_options(p: argparse.ArgumentParser) -> None:
    """What `migrate` and `migrate-chain` share: destination, strategy, budget, rate, sites,
    controller, hold, --json."""
    p.add_argument("--to", required=True, metavar="SITE")
    p.add_argument(
        "--strategy",
        choices=list(STRATEGIES),
        default=defaults.DEFAULT_STRATEGY,
        help="; ".join(f"{s.name}: {s.summary}" for s in STRATEGIES.values())
        + f" (default {defaults.DEFAULT_STRATEGY})",
    )
    p.add_argument(
        "--downtime-budget-ms",
        "--budget-ms",
        dest="budget_ms",
        type=float,
        default=defaults.DOWNTIME_BUDGET_MS,
        help="downtime budget (ms): pre-copy stops iterating when the last copy fits it "
        f"(default {defaults.DOWNTIME_BUDGET_MS:g})",
    )
    p.add_argument(
        "--rate",
        default=f"{defaults.MIGRATION_RATE_BPS // 1_000_000}Mbit",
        help="reservation asked for the copy rounds (default %(default)s)",
    )
    add_site_options(p, DEFAULT_SCENARIO)
    add_controller_options(p, "no reservation, no switch")
    _hold_options(p)
    p.add_argument("--json", type=Path, help="write the migration record (timeline) here")


def _bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench <name>`: each benchmark is `mecmig.bench.<name>.run(args, console)`."""
    p = sub.add_parser(
        "bench",
        help="run a benchmark: results as JSON, a plot and a Markdown report",
        description="Run a benchmark on the real emulation (root, OVS, Mininet). Each writes "
        "summary.json, a PNG plot and report.md into --out; the README quotes only those numbers. "
        "Exit codes: 0 the run completed (even if a goal was missed: the report says so), 1 a case "
        "failed to run, 3 environment not ready.",
    )
    bench = p.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    b = bench.add_parser(
        "reservation",
        help="meters vs TCP (rate x burst x pacing) and relocation switch-over",
        description="Part 1, on --scenario: iperf3 TCP transfers (5 s) from the first site's MEC "
        "host to the second's on a port a reservation matches, for reserved rates 1, 5, 20, 100 "
        "Mbit/s x meter burst 50, 200, 300 (the controller's default), 500, 1000 ms of the rate x "
        "sender pacing off/on; plus one unreserved baseline transfer. Part 2, on "
        "scenarios/three-sites.yaml: 'video' is re-plugged at another site and relocated 10 times; "
        "the controller times each switch-over (first flow-mod -> last barrier reply) and ue1 "
        "must still reach it. Goals: goodput within ±10 % of the reserved rate; switch-over "
        "<= 10 ms. Writes summary.json, reservation.png and report.md into --out. Takes about 4 "
        "minutes (--quick: under a minute). Needs root. Exit 0 the run completed (goals met or "
        "not), 1 a case failed to run, 3 not root / no OVS / no iperf3.",
    )
    _bench_options(
        b,
        "reservation",
        quick="rates 5 and 20 Mbit/s, default burst only, 2 s transfers, 3 relocations: under a "
        "minute; a smoke test (do not quote its numbers)",
        scenario="scenario of the meter part; needs two sites (the relocation part always uses "
        "scenarios/three-sites.yaml)",
    )
    _resume_option(b)
    _bench_migration_parser(bench)
    _bench_reliability_parser(bench)
    _bench_scale_parser(bench)
    _bench_patterns_parser(bench)
    _bench_concurrency_parser(bench)
    _bench_loss_parser(bench)
    _bench_mobility_parser(bench)
    _bench_sync_parser(bench)
    from mecmig.bench.levels import add_parser as add_levels_parser

    add_levels_parser(bench)  # seed 003's state levels: Table IV
    _resume_option(bench.choices["levels"])
    from mecmig.bench.compression import add_parser as add_compression_parser

    add_compression_parser(bench)  # issue 13, item 5: zstd on a migration's copy
    _resume_option(bench.choices["compression"])


def _bench_loss_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench loss`: seed 003's Table III, packet loss on the migration path."""
    from mecmig.bench.loss import add_parser

    add_parser(bench)
    _resume_option(bench.choices["loss"])


def _bench_sync_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench sync`: a replica's volume sync period, staleness against traffic."""
    from mecmig.bench.sync import add_parser

    add_parser(bench)
    _resume_option(bench.choices["sync"])


def _bench_mobility_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench mobility`: services that follow a car, speculative or not (issue 12)."""
    from mecmig.bench.mobility import add_parser

    add_parser(bench)
    _resume_option(bench.choices["mobility"])


def _bench_concurrency_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench concurrency`: many migrations at once over one link (issue 11, part 4)."""
    from mecmig.bench.concurrency import add_parser

    add_parser(bench)
    _resume_option(bench.choices["concurrency"])


def _bench_patterns_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench patterns`: seed 000's SFC migration patterns (Tables I, II, Fig. 5)."""
    from mecmig.bench.patterns import DEFAULT_OUT, PATTERN_NAMES, parse_bandwidth

    b = bench.add_parser(
        "patterns",
        help="SFC migration patterns (seed 000): chain downtime, total time, CPU per pattern",
        description="On scenarios/chains.yaml: the 2-function chain 'pair' (fw: a user-space "
        "forwarder with 32 MiB of seeded memory; video: an HTTP streaming server) moves "
        "between mec1 and mec2 under each pattern (async, wait-for-me, round-robin), with and "
        "without network awareness, at final-iteration bandwidths of 0.3 MB/s, 2 MB/s and "
        "unlimited, 10 times each (pre-copy, budget 1000 ms), while a client at ue1 keeps one "
        "HTTP connection through the chain and the source site's CPU is sampled at 10 Hz. "
        "Rows: pattern, network_aware, bandwidth_bps, chain_downtime_ms, function_downtime_ms, "
        "freeze_spread_ms, total_ms, bytes, cpu_mean, cpu_peak, state_intact, repetition. Goals "
        "(seed 000's shape): async the highest CPU peak and shortest total, round-robin the "
        "lowest CPU and longest total, wait-for-me's freezes within 10 ms, chain downtime below "
        "seed 000's 1.19-1.57 s at 2 MB/s and unlimited. Writes summary.json, patterns.png, "
        "cpu.png, CSVs and report.md into --out. The full run takes about 15 minutes. Exit 0 "
        "the run completed (goals met or not), 1 a run failed, 3 not root / no OVS / no runc "
        "or CRIU.",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="3 repetitions instead of 10 (about 5 minutes); a smoke test",
    )
    b.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
        help="where the results go (default: results/patterns/)",
    )  # fmt: skip
    b.add_argument("--patterns", nargs="+", choices=PATTERN_NAMES, help="only these")
    b.add_argument(
        "--bandwidths",
        nargs="+",
        type=parse_bandwidth,
        metavar="BW",
        help="final-iteration bandwidths, e.g. 0.3MB/s 2MB/s unlimited (default: those three)",
    )
    b.add_argument("--repeat", type=int, metavar="N", help="repetitions (default 10; --quick 3)")
    _resume_option(b)
    _bench_links_parser(bench)


def _bench_links_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench links`: do shaped links have their declared capacity (issue 11, part 1)?"""
    b = bench.add_parser(
        "links",
        help="goodput through each shaped link vs its capacity; a reservation under a flood",
        description="A generated scenario (written as scenario.yaml into --out): a core switch "
        "and one site per capacity (10, 50, 100, 200, 500 Mbit/s), each site's link shaped to "
        "it (HTB on both veth ends: reserved traffic, marked DSCP 46 by the controller, first; "
        "best effort after). Part 1: iperf3 TCP goodput through each link, both directions, 3 "
        "runs of 5 s each. Part 2: on the 100 Mbit/s link, a TCP transfer beside a 200 Mbit/s "
        "UDP flood, with a 40 Mbit/s reservation and without. Goals: goodput within ±10 % of "
        "the capacity; the reserved transfer within ±10 % of 40 Mbit/s. Writes summary.json, "
        "links.png, report.md, CSVs and raw/ into --out. About 5 minutes (--quick: about a "
        "minute). Needs root. Exit 0 the run completed (goals met or not), 1 a transfer failed, "
        "3 not root / no OVS / no iperf3 or tc.",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="10, 100 and 500 Mbit/s, one 3 s run each, one reservation run: about a minute; a "
        "smoke test (do not quote its numbers)",
    )
    b.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "links",
        metavar="DIR",
        help="where the results go (default: results/links/)",
    )
    _resume_option(b)


def _bench_scale_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench scale`: the controller's decisions at operator scale (issue 15)."""
    b = bench.add_parser(
        "scale",
        help="each controller operation's latency at 10 to 3000 sites; memory; build time",
        description="On generated fabrics (sites under aggregation switches in a ring) of 10, "
        "100, 1000 and 3000 sites: the controller state's build time and memory (bytes per site "
        "and per reservation), then each operation's latency (median, p95, max) and the flows "
        "it changes, on the pure state and through the REST API over software switches; "
        "admission alone at 10000 sites; one point on real Open vSwitch bridges (root). Goals: "
        "at 1000 sites every operation <= 5 ms median on the state, <= 10 ms through REST, "
        "build <= 1 s; admission at 10000 sites <= 10 ms. Writes summary.json, scale.png and "
        "report.md into --out. About 5 minutes (--quick: about a minute). Exit 0 the run "
        "completed (goals met or not), 1 a size could not run.",
    )
    b.add_argument("--quick", action="store_true", help="100 and 1000 sites, 20 of each")
    b.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "scale",
        metavar="DIR",
        help="where the results go (default: results/scale/)",
    )
    b.add_argument("--reps", type=int, default=None, metavar="N", help="of each operation")
    b.add_argument("--no-ovs", action="store_true", help="skip the Open vSwitch point")
    b.add_argument(
        "--ovs-sites", type=int, default=100, metavar="N", help="sites of the OVS point (100)"
    )


def _bench_reliability_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench reliability`: the fault matrix and the soak."""
    from mecmig.bench.fault_names import FAULT_NAMES, PHASES

    b = bench.add_parser(
        "reliability",
        help="every fault at every phase boundary, counted; then a soak of many migrations",
        description="On scenarios/reliability.yaml (memcached moved mec1 -> mec2, its client at "
        "mec3 counting in it every 5 ms): for each fault (" + ", ".join(FAULT_NAMES) + "), each "
        "phase boundary (" + ", ".join(PHASES) + ") and each strategy, one migration with the "
        "fault, then the recovery an operator would do; each row says where the service "
        "answers, whether its state and its client's connection survived, and what was left "
        "behind. Then a soak: migrations back and forth, strategies in turn, under the same "
        "client (no gap above its frozen window + 50 ms, no state lost, no leak, resident "
        "memory growing < 10 %). Writes summary.json, reliability.png, faults.md and report.md "
        "into --out. The full run takes about an hour. Needs root. Exit 0 the run completed "
        "(rows green or not), 1 a row could not run, 3 not root / no OVS / no runc.",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="10 chosen rows and a 20-migration soak: about 4 minutes; a smoke test",
    )
    b.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "reliability",
        metavar="DIR",
        help="where the results go (default: results/reliability/)",
    )
    b.add_argument("--faults", nargs="+", choices=FAULT_NAMES, metavar="F", help="only these")
    b.add_argument("--phases", nargs="+", choices=tuple(PHASES), metavar="P", help="only these")
    b.add_argument(
        "--strategies",
        nargs="+",
        choices=("cold", "precopy", "postcopy", "hybrid"),
        metavar="S",
        help="only these (default: cold, precopy, postcopy, hybrid)",
    )
    b.add_argument(
        "--soak",
        type=int,
        default=None,
        metavar="N",
        help="soak migrations (default 200; --quick 20; 0 skips the soak)",
    )


def _bench_migration_parser(bench: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mecmig bench migration`: its own options (the scenario is always scenarios/edge.yaml)."""
    from workloads.memhog import parse_rate, parse_size

    strategies = ("cold", "precopy", "postcopy", "hybrid", "baseline", "podman", "podman-zstd")
    b = bench.add_parser(
        "migration",
        help="live migration per strategy x memory size x dirty rate: downtime, time, bytes",
        description="On scenarios/edge.yaml (one testbed for the whole run): the memhog "
        "instance 'counter' is deployed at mec1 with each memory size and dirty rate, probed "
        "from ue1 over one TCP"
        " connection (a PING every 5 ms) and migrated to mec2 with each strategy: cold, "
        "precopy, postcopy, hybrid (downtime budget 1000 ms) and baseline (seed 004's runc "
        "checkpoint -> copy -> restore, no reservation); where podman is installed "
        "(scripts/bootstrap --podman) also podman and podman-zstd (Podman's checkpoint "
        "--export, copied between the MEC hosts, restore --import; uncompressed and zstd). Full"
        " run: 64, 256, 512 MiB x 0 and 10 MB/s x the 5 strategies (30 cases; 42 with "
        "podman's). Goals: post-copy downtime <= 100 ms and >= 10x below the baseline at 512 "
        "MiB / 10 MB/s; pre-copy below the baseline by at least the transfer time it moves out "
        "of the freeze; post-copy's total time <= 1.2 x its bytes / the path's rate (one TCP "
        "stream between the MEC hosts, measured first) and cold's frozen window <= 1.2 x the "
        "baseline's, per size and dirty rate. Writes summary.json, downtime.png, total.png and "
        "report.md into --out. Needs root. Exit 0 the run completed (goals met or not), 1 a "
        "case failed to run, 3 not root / no OVS / no runc or CRIU.",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="64 MiB dirtying 10 MB/s, the 5 strategies: about 2 minutes; a smoke test (do not "
        "quote its numbers)",
    )
    b.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "migration",
        metavar="DIR",
        help="where summary.json, the plots and report.md go (default: results/migration/)",
    )
    b.add_argument(
        "--strategies",
        nargs="+",
        choices=strategies,
        metavar="S",
        help=f"strategies to run ({', '.join(strategies)}; default: all)",
    )
    b.add_argument(
        "--sizes",
        nargs="+",
        type=parse_size,
        metavar="SIZE",
        help="memhog memory sizes, e.g. 64MiB 512MiB (default: 64MiB 256MiB 512MiB)",
    )
    b.add_argument(
        "--dirty-rates",
        nargs="+",
        type=parse_rate,
        metavar="RATE",
        help="memhog dirty rates in bytes/s, e.g. 0 10MB/s (default: 0 10MB/s)",
    )
    b.add_argument("--repeat", type=int, default=1, metavar="N", help="runs per case (default 1)")
    _resume_option(b)
    _hold_options(b)


def _resume_option(p: argparse.ArgumentParser) -> None:
    """--resume for the benchmarks on the experiment harness (raw/ per run under --out)."""
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs that --out's raw/ holds as complete and without error (same "
        "settings) and run only the others; without it raw/ starts empty",
    )


def _hold_options(p: argparse.ArgumentParser) -> None:
    """--hold auto|always|never (--no-hold: never): traffic held while the service is frozen."""
    p.add_argument(
        "--hold",
        choices=HOLD_MODES,
        default=defaults.HOLD_MODE,
        help="hold the service's traffic at the controller while it is frozen and deliver it "
        "after the restore (else the network lock drops it and clients wait for their TCP "
        "retransmission timeout). auto (default): from CRIU's freeze on, asked by the source "
        "agent's CRIU; where only the engine can ask (before the dump), for cold, precopy and "
        "restart only (see README)",
    )
    p.add_argument(
        "--no-hold", dest="hold", action="store_const", const="never", help="--hold never"
    )


def _bench_options(p: argparse.ArgumentParser, name: str, *, quick: str, scenario: str) -> None:
    """The options every benchmark takes: --quick, --out (results/<name>/), --scenario."""
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS / name,
        metavar="DIR",
        help=f"where summary.json, the plot and report.md go (default: results/{name}/)",
    )
    p.add_argument(
        "--scenario",
        type=Path,
        default=DEFAULT_SCENARIO,
        metavar="FILE",
        help=f"{scenario} (default: scenarios/default.yaml)",
    )


# services log what they do; commands a person runs print their own progress and results, and
# log only warnings and errors (with -v: everything, HTTP requests included)
SERVICES = ("controller", "agent")
CHATTY = ("httpx", "httpcore", "urllib3", "uvicorn.access", "uvicorn.error", "asyncio")


def configure_logging(command: str, verbose: bool) -> None:
    """Log levels for `command` (see SERVICES and CHATTY)."""
    level = logging.INFO if command in SERVICES else logging.WARNING
    logging.basicConfig(
        level=logging.DEBUG if verbose else level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mecmig` console script."""
    args = _parser().parse_args(argv)
    configure_logging(args.command, args.verbose)
    try:
        if args.command == "check-config":
            return _check_config(args.scenario)
        if args.command == "show":
            from mecmig.show import show_scenario

            show_scenario(console, load_scenario(args.scenario))
            return EXIT_OK
        if args.command == "admit":
            from mecmig.show import admit_command

            return admit_command(
                console, load_scenario(args.scenario), args.src, args.dst, args.rate
            )
        if args.command == "demo":
            from mecmig.demo import run_demo

            return run_demo(console, args.scenario, tuple(args.strategies.split(",")))
        if args.command == "controller":
            return _controller(args)
        if args.command == "agent":
            from mecmig.migrate_cli import agent_command

            return agent_command(args)
        if args.command == "emulate":
            from mecmig.emulate_cli import emulate_command

            return emulate_command(args, console)
        if args.command == "migrate":
            from mecmig.migrate_cli import migrate_command

            return migrate_command(args, console)
        if args.command == "migrate-chain":
            from mecmig.chain_cli import migrate_chain_command

            return migrate_chain_command(args, console)
        if args.command in INSTANCE_COMMANDS:
            from mecmig.instances_cli import instance_command

            return instance_command(args, console)
        if args.command == "image":
            from mecmig.image_pack import image_command

            return image_command(args)
        if args.command == "mobility":
            from mecmig.mobility_cli import mobility_command

            return mobility_command(args, console)
        if args.command == "cleanup":
            return _cleanup()
        if args.command == "bench":
            return _bench(args)
    except ScenarioError as exc:
        err_console.print(f"[red]invalid scenario[/red] {exc}", highlight=False)
        return EXIT_FAILED
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    raise AssertionError(f"unhandled command {args.command}")


def _check_config(path: Path) -> int:
    try:
        sc = load_scenario(path)
    except ScenarioError as exc:
        err_console.print(str(exc), highlight=False)
        return EXIT_FAILED
    console.print(
        f"{path}: ok - scenario {sc.name!r}: "
        + ", ".join(
            _count(n, what)
            for n, what in (
                (len(sc.sites), "site"),
                (len(sc.sites) + len(sc.switches), "switch"),
                (len(sc.links), "link"),
                (len(sc.instances), "instance"),
                (len(sc.chains), "chain"),
                (len(sc.ues), "UE"),
            )
        ),
        highlight=False,
    )
    return EXIT_OK


def _controller(args: argparse.Namespace) -> int:
    from controller.launcher import run_controller
    from controller.settings import Settings, SettingsError

    sc = load_scenario(args.scenario)  # fail early, with the key path, before os-ken starts
    state = args.state_file or Path(f"/var/lib/mecmig/controller-{sc.name}.json")
    token_file = args.token_file or Settings.token_file_from_env()
    settings = Settings(
        args.scenario.resolve(),
        args.rest_host,
        args.rest_port,
        state,
        extensions=("orchestration.service:mount",),
        token_file=token_file.resolve() if token_file else None,
    )
    try:
        settings.token()  # a non-loopback address without a token, or an unusable token file
    except SettingsError as exc:
        err_console.print(f"mecmig controller: {exc}", highlight=False, markup=False)
        return EXIT_USAGE
    run_controller(settings, of_port=args.of_port, verbose=args.verbose)
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"mecmig.bench.{args.bench}")
    return int(module.run(args, console))


def _cleanup() -> int:
    from agent.cleanup import cleanup_migration_leftovers
    from mininet_scenarios.emulation import cleanup_recorded

    # emulations first: that stops their agents, whose containers and directories go next
    report = cleanup_recorded().add(cleanup_migration_leftovers())
    for line in report.done:
        console.print(line, highlight=False)
    for line in report.kept:
        err_console.print(f"kept: {line}", highlight=False)
    if not report.done:
        console.print("nothing to clean up")
    return EXIT_OK


def _count(n: int, what: str) -> str:
    """`1 chain`, `2 chains`, `3 switches`."""
    if n == 1:
        return f"1 {what}"
    return f"{n} {what}es" if what.endswith(("s", "sh", "ch", "x")) else f"{n} {what}s"


if __name__ == "__main__":
    sys.exit(main())
