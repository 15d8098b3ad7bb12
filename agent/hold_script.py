"""The CRIU action script that holds a service's traffic at the very moment CRIU freezes it.

CRIU runs action scripts named in its configuration at each step of a dump (also under runc,
after runc's own notifications); `network-lock` comes right after the process tree is frozen
and just before CRIU locks the network. Holding there, rather than before `runc checkpoint`
starts (which freezes only ~90 ms later), costs the client no time while the service still runs:
packets that arrive before the hold is in place reach the frozen socket, whose queue CRIU dumps.

The script asks the controller (`POST .../hold`) and leaves a marker file when it answered; it
always exits 0: a controller that does not answer must not fail the dump (the lock then drops
the packets and TCP retransmits them, as without a hold).
"""

from __future__ import annotations

import shlex
from pathlib import Path

HOLD_ACTION = "network-lock"
CURL_TIMEOUT_S = 2
HOLD_TIMEOUT_S = 120


def hold_script(
    url: str, marker: Path, netns_pid: int | None = None, frozen: Path | None = None
) -> str:
    """The script's text: POST `url` at CRIU's network lock; `marker` exists if it answered.

    `netns_pid`: run curl in that process's network namespace (an agent inside an emulated
    host reaches the controller through the root namespace). `frozen`: first, the wall clock
    (seconds since the epoch, ns digits) goes there: when CRIU froze the tree (a chain's
    functions' freezes are compared by it)."""
    enter = f"nsenter -t {int(netns_pid)} -n " if netns_pid is not None else ""
    body = shlex.quote(f'{{"timeout_s": {HOLD_TIMEOUT_S}}}')
    return (
        "#!/bin/sh\n"
        "# mecmig: hold the service's traffic at the controller once CRIU has frozen it\n"
        f'[ "$CRTOOLS_SCRIPT_ACTION" = {HOLD_ACTION} ] || exit 0\n'
        + (f"date +%s.%N > {shlex.quote(str(frozen))}\n" if frozen is not None else "")
        + f"{enter}curl -sf -m {CURL_TIMEOUT_S} -o /dev/null -X POST "
        f"-H 'Content-Type: application/json' -d {body} {shlex.quote(url)} "
        f"&& : > {shlex.quote(str(marker))}\n"
        "exit 0\n"
    )
