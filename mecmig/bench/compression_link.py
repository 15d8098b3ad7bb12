"""`mecmig bench compression`'s link and images: a veth pair into a network namespace of its
own, shaped with tc TBF or not, and two memory images to copy over it with `agent.transfer`.

The compressible image is this machine's shared libraries and Python sources laid end to end
(code and data, ratio about 0.35 at level 3), the incompressible one `os.urandom`; each is a
`pages-1.img` beside a small `inventory.img`, as a CRIU dump lays it out. `CompressionBed`
sets the link up and removes it, makes the images, knows each path's rate (the best of two
plain copies of the random image, as a migration would know the path's rate) and, per run of
a path and an image, copies it in each mode one after the other: plain, zstd, and what
`migration.compression.choose` picks from a fresh sample (`agent.compression.measure`). Where
a copy took under `SHORT_COPY_S`, the run makes `SHORT_COPIES` rounds of the three and counts
each mode's fastest (unshaped, 16 MiB copies take 75 ms, and 140 ms for a second or two when
other work takes the cores: the modes compared are copied side by side in time); the probes
take the best of `SHORT_COPIES` too. Needs root; it creates and removes only its
own namespace (`mmz-rx`) and veth pair (`mmz-tx`/`mmz-rx0`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.compression import measure
from agent.transfer import Receiver, TransferStats, send_dir
from agent.transfer_wire import Compress
from ground.runner import Runner, SubprocessRunner
from mecmig.bench.compression import MODES
from migration.compression import choose

NS, TX, RX = "mmz-rx", "mmz-tx", "mmz-rx0"
TX_IP, RX_IP, PREFIX = "10.254.77.1", "10.254.77.2", 30
CLONE_NEWNET = 0x40000000
MiB = 1 << 20
CORPUS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/python3")
PROBES = 2  # plain copies of the random image that give a path its rate (the best one;
# SHORT_COPIES of them when one is short)
COPY_TIMEOUT_S = 120.0
# a copy shorter than this is at the mercy of the scheduler (2 cores, both ends here, other
# work beside them): a run then makes SHORT_COPIES rounds of its modes, and each mode's time is
# its fastest copy's
SHORT_COPY_S, SHORT_COPIES = 0.5, 5


class LinkSetupError(RuntimeError):
    """The namespace, the veth pair or the shaping could not be set up."""


def setup(runner: Runner) -> None:
    teardown(runner)
    steps = [
        ["ip", "netns", "add", NS],
        ["ip", "link", "add", TX, "type", "veth", "peer", "name", RX],
        ["ip", "link", "set", RX, "netns", NS],
        ["ip", "addr", "add", f"{TX_IP}/{PREFIX}", "dev", TX],
        ["ip", "link", "set", TX, "up"],
        ["ip", "-n", NS, "addr", "add", f"{RX_IP}/{PREFIX}", "dev", RX],
        ["ip", "-n", NS, "link", "set", RX, "up"],
        ["ip", "-n", NS, "link", "set", "lo", "up"],
    ]
    for argv in steps:
        runner.run(argv)


def teardown(runner: Runner) -> None:
    """Only what `setup` made: deleting the namespace deletes its veth end and so the pair."""
    runner.run(["ip", "link", "del", TX], check=False)
    runner.run(["ip", "netns", "del", NS], check=False)


def shape(runner: Runner, rate_mbit: int | None) -> None:
    """TBF at `rate_mbit` on the sending end (what leaves towards the receiver); None: none."""
    if rate_mbit is None:
        runner.run(["tc", "qdisc", "del", "dev", TX, "root"], check=False)
        return
    tbf = ["tbf", "rate", f"{rate_mbit}mbit", "burst", "256kb", "latency", "50ms"]
    runner.run(["tc", "qdisc", "replace", "dev", TX, "root", *tbf])


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """This thread in network namespace `name` (sockets made meanwhile stay there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
        try:
            yield
        finally:
            if libc.setns(here, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(here)
        os.close(there)


def copy(src: Path, dest: Path, compress: Compress) -> tuple[float, TransferStats, float]:
    """One send into a fresh `dest` in the namespace: seconds, stats, CPU seconds of this
    process (both ends: the receiver runs here too)."""
    shutil.rmtree(dest, ignore_errors=True)
    with in_netns(NS):
        rx = Receiver(dest, host=RX_IP)
        port = rx.start()
    try:
        cpu, started = time.process_time(), time.monotonic()
        stats, _ = send_dir(src, RX_IP, port, timeout=COPY_TIMEOUT_S, compress=compress)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        rx.wait(30)
    finally:
        rx.close()
    return seconds, stats, cpu


def compressible_bytes(size: int) -> bytes:
    out = bytearray()
    for root in CORPUS:
        for dirpath, _, names in sorted(os.walk(root)):
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                if os.path.islink(path) or not (name.endswith(".py") or ".so" in name):
                    continue
                with contextlib.suppress(OSError), open(path, "rb") as f:
                    out += f.read(size - len(out))
                if len(out) >= size:
                    return bytes(out)
    if not out:
        raise LinkSetupError(f"no libraries or sources under {CORPUS} to build an image from")
    return bytes((out * (size // len(out) + 1))[:size])


def make_images(root: Path, size: int) -> dict[str, Path]:
    images = {"compressible": compressible_bytes(size), "random": os.urandom(size)}
    out = {}
    for name, data in images.items():
        (root / name).mkdir(parents=True)
        (root / name / "pages-1.img").write_bytes(data)
        (root / name / "inventory.img").write_bytes(b"\0" * 64)
        out[name] = root / name
    return out


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@dataclass
class CompressionBed:
    """The link and the images of one invocation; `run` makes a row per copy."""

    runner: Runner
    work: Path
    images: dict[str, Path]
    paths: dict[str, int | None]  # path name -> TBF rate in Mbit/s (None: unshaped)
    link_bps: dict[str, float]
    shaped: str | None = None

    def use(self, path: str, on_phase: Callable[[str], None]) -> float:
        """Shape the link for `path` (when it is not already) and its rate in bit/s (probed
        once per invocation)."""
        if self.shaped != path:
            self.shaped = None
            shape(self.runner, self.paths[path])
            self.shaped = path
        if path not in self.link_bps:
            on_phase(f"probing {path}'s rate")
            probes = [copy(self.images["random"], self.work / "probe", "none")]
            want = SHORT_COPIES if probes[0][0] < SHORT_COPY_S else PROBES
            while len(probes) < want:
                probes.append(copy(self.images["random"], self.work / "probe", "none"))
            self.link_bps[path] = max(st.bytes_on_wire * 8 / s for s, st, _ in probes)
        return self.link_bps[path]

    def run(self, path: str, image: str, on_phase: Callable[[str], None]) -> dict[str, Any]:
        """The copies of `image` over `path` in each of `MODES`: plain ("none"), "zstd" and
        "chosen" (what the choice picks from this run's sample and the path's rate), one after
        the other; when one of them took under `SHORT_COPY_S`, `SHORT_COPIES` rounds of the
        three (each round in another order) and each mode's fastest copy. The run's row: each
        mode's row under "copies", and their times."""
        link_bps = self.use(path, on_phase)
        src = self.images[image]
        total = tree_bytes(src)
        on_phase(f"sampling {image}")
        started = time.monotonic()
        sample = measure(src)
        sample_s = time.monotonic() - started
        choice = choose(link_bps, sample, total_bytes=total)
        modes: dict[str, Compress] = {"none": "none", "zstd": "zstd", "chosen": choice.compress}
        done: dict[str, list[tuple[float, TransferStats, float]]] = {m: [] for m in MODES}
        rounds = 1
        while len(done["none"]) < rounds:
            order = MODES[len(done["none"]) % 3 :] + MODES[: len(done["none"]) % 3]
            for mode in order:
                on_phase(f"copying {image} over {path}, {mode} ({modes[mode]})")
                done[mode].append(copy(src, self.work / "dest", modes[mode]))
            if min(c[0] for copies in done.values() for c in copies) < SHORT_COPY_S:
                rounds = SHORT_COPIES
        facts = {
            "link_bps": round(link_bps),
            "rate_mbit": self.paths[path],
            "chosen": choice.compress,
            "why": choice.why,
            "estimate_s": {"none": round(choice.plain_s, 4), "zstd": round(choice.zstd_s, 4)},
            "sample": None if sample is None else {
                "raw_bytes": sample.raw_bytes,
                "compressed_bytes": sample.compressed_bytes,
                "ratio": round(sample.ratio, 4),
                "compressor_mbps": round(sample.rate_bytes_s * 8 / 1e6, 1),
                "level": sample.level,
            },
            "sample_s": round(sample_s, 4),
        }  # fmt: skip
        rows = [mode_row(path, image, m, modes[m], done[m], facts) for m in MODES]
        seconds = {f"{r['mode']}_s": r["seconds"] for r in rows}
        return {
            "path": path,
            "image": image,
            **seconds,
            "chosen_over_none": round(seconds["chosen_s"] / seconds["none_s"], 4),
            **facts,
            "copies": rows,
        }


def mode_row(
    path: str,
    image: str,
    mode: str,
    compress: Compress,
    copies: list[tuple[float, TransferStats, float]],
    facts: dict[str, Any],
) -> dict[str, Any]:
    """A mode's row: its fastest copy (all their times in copies_s) and the run's facts."""
    seconds, stats, cpu = min(copies, key=lambda c: c[0])
    return {
        "path": path,
        "image": image,
        "mode": mode,
        "compress": compress,
        "seconds": round(seconds, 4),
        "bytes_on_wire": stats.bytes_on_wire,
        "bytes_total": stats.bytes_total,
        "ratio": round(stats.bytes_on_wire / stats.bytes_total, 4) if stats.bytes_total else None,
        **facts,
        "cpu_s": round(cpu, 3),
        "copies_s": [round(c[0], 4) for c in copies],
        "goodput_mbps": round(stats.bytes_total * 8 / seconds / 1e6, 1),
    }


@contextlib.contextmanager
def compression_bed(size: int, paths: dict[str, int | None]) -> Iterator[CompressionBed]:
    """The link (set up, then removed) and the images of `size` bytes (in a temporary
    directory, removed after)."""
    runner = SubprocessRunner()
    work = Path(tempfile.mkdtemp(prefix="mecmig-compression-"))
    try:
        images = make_images(work / "images", size)
        setup(runner)
        yield CompressionBed(runner, work, images, paths, {})
    finally:
        teardown(runner)
        shutil.rmtree(work, ignore_errors=True)
