"""Does zstd on a migration's copy pay, and is the choice ever slower? (issue 13, item 5)

    flock -o /tmp/mecmig-live.lock python -m mecmig.bench.compression [--size-mib 64] [--runs 3]

Sends a compressible memory image and a random one of `--size-mib` each with `agent.transfer`
(`compress="none"` and `"zstd"`, alternating, `--runs` each) over a veth pair into a network
namespace of its own: once shaped to `--rate-mbit` (tc TBF on the sending end; this kernel has
no netem) and once unshaped. For each path and image it prints the median times, the sample
(`agent.compression.measure`), what `migration.compression.choose` picks from it and the
path's measured rate, and the chosen mode's time against the plain copy's. The compressible
image is this machine's shared libraries and Python sources laid end to end (code and data,
ratio about 0.33 at level 3), the incompressible one `os.urandom`. Needs root; it creates and
removes only its own namespace (`mmz-rx`) and veth pair (`mmz-tx`/`mmz-rx0`).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.compression import measure
from agent.transfer import Receiver, TransferStats, send_dir
from agent.transfer_wire import COMPRESS_MODES, Compress
from ground.runner import Runner, SubprocessRunner
from migration.compression import Choice, Sample, choose

NS, TX, RX = "mmz-rx", "mmz-tx", "mmz-rx0"
TX_IP, RX_IP, PREFIX = "10.254.77.1", "10.254.77.2", 30
CLONE_NEWNET = 0x40000000
MiB = 1 << 20
CORPUS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/python3")


@dataclass(frozen=True)
class Row:
    path: str
    image: str
    link_bps: float
    sample: Sample
    choice: Choice
    none_s: list[float]
    zstd_s: list[float]
    none_wire: int
    zstd_wire: int
    cpu_none_s: float
    cpu_zstd_s: float

    @property
    def chosen_s(self) -> float:
        return statistics.median(self.zstd_s if self.choice.compress == "zstd" else self.none_s)


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
        stats, _ = send_dir(src, RX_IP, port, timeout=60, compress=compress)
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
        raise RuntimeError(f"no libraries or sources under {CORPUS} to build an image from")
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


def measure_path(
    runner: Runner, path: str, rate: int | None, images: dict[str, Path], work: Path, runs: int
) -> list[Row]:
    shape(runner, rate)
    size = sum(p.stat().st_size for p in images["random"].iterdir())
    # the path's rate, as a migration would know it: plain copies of incompressible bytes
    probes = [copy(images["random"], work / "probe", "none") for _ in range(2)]
    link_bps = max(stats.bytes_on_wire * 8 / seconds for seconds, stats, _ in probes)
    rows = []
    for image, src in images.items():
        sample = measure(src)
        assert sample is not None
        choice = choose(link_bps, sample, total_bytes=size)
        times: dict[str, list[float]] = {"none": [], "zstd": []}
        wire: dict[str, int] = {}
        cpu: dict[str, list[float]] = {"none": [], "zstd": []}
        for _ in range(runs):
            for mode in COMPRESS_MODES:
                s, st, c = copy(src, work / "dest", mode)
                times[mode].append(s)
                cpu[mode].append(c)
                wire[mode] = st.bytes_on_wire
        rows.append(
            Row(
                path,
                image,
                link_bps,
                sample,
                choice,
                times["none"],
                times["zstd"],
                wire["none"],
                wire["zstd"],
                statistics.median(cpu["none"]),
                statistics.median(cpu["zstd"]),
            )
        )
        print(line(rows[-1]), flush=True)
    return rows


HEADER = (
    f"{'path':<14} {'image':<12} {'link Mb/s':>9} {'ratio':>6} {'zstd MB/s':>9} "
    f"{'none s':>7} {'zstd s':>7} {'wire MiB n/z':>13} {'cpu s n/z':>10} {'choice':>6} "
    f"{'chosen/none':>11}"
)


def line(r: Row) -> str:
    none, zstd = statistics.median(r.none_s), statistics.median(r.zstd_s)
    wire = f"{r.none_wire / MiB:.1f}/{r.zstd_wire / MiB:.1f}"
    return (
        f"{r.path:<14} {r.image:<12} {r.link_bps / 1e6:>9.0f} {r.sample.ratio:>6.3f} "
        f"{r.sample.rate_bytes_s / 1e6:>9.0f} {none:>7.2f} {zstd:>7.2f} {wire:>13} "
        f"{r.cpu_none_s:>4.2f}/{r.cpu_zstd_s:<5.2f} {r.choice.compress:>6} "
        f"{r.chosen_s / none:>11.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate-mbit", type=int, default=100)
    ap.add_argument("--tolerance", type=float, default=0.05, help="noise allowed (share)")
    args = ap.parse_args(argv)
    runner = SubprocessRunner()
    work = Path(tempfile.mkdtemp(prefix="mecmig-compression-"))
    try:
        images = make_images(work / "images", args.size_mib * MiB)
        setup(runner)
        print(f"{args.size_mib} MiB images, median of {args.runs} runs each\n{HEADER}")
        rows = []
        for path, rate in ((f"{args.rate_mbit} Mbit/s", args.rate_mbit), ("unshaped", None)):
            rows += measure_path(runner, path, rate, images, work, args.runs)
    finally:
        teardown(runner)
        shutil.rmtree(work, ignore_errors=True)
    worse = [r for r in rows if r.chosen_s > statistics.median(r.none_s) * (1 + args.tolerance)]
    for r in rows:
        print(f"  {r.path}, {r.image}: {r.choice.why}")
    print("the choice is never slower" if not worse else f"SLOWER: {[line(r) for r in worse]}")
    return 1 if worse else 0


if __name__ == "__main__":
    raise SystemExit(main())
