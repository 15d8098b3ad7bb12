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
from urllib.parse import urlsplit

from ground.token import is_loopback

HOLD_ACTION = "network-lock"
CURL_TIMEOUT_S = 2
HOLD_TIMEOUT_S = 120


def hold_script(
    url: str, marker: Path, netns_pid: int | None = None, frozen: Path | None = None
) -> str:
    """The script's text: POST `url` at CRIU's network lock; `marker` exists if it answered.

    `netns_pid`: ask from that process's network namespace (an agent inside an emulated host
    reaches the controller through the root namespace). `frozen`: first, the wall clock
    (seconds since the epoch) goes there: when CRIU froze the tree (a chain's functions'
    freezes are compared by it).

    The script runs inside the frozen window. A controller on this host's loopback (the
    emulation's, or one beside the agent) is asked by bash itself over /dev/tcp, and the
    clock comes from $EPOCHREALTIME: no curl (its start took ~9 ms here) and no date. The ask
    runs under `timeout` (CURL_TIMEOUT_S, as curl's -m), so a connect that hangs (a full
    accept queue drops the SYN) cannot stretch the freeze. Any other controller is asked with
    curl. The script exits 0 whatever happens (CRIU fails the dump on any other status):
    SIGPIPE is ignored, and neither timeout's nor nsenter's status is passed on."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or not is_loopback(parts.hostname):
        return _curl_script(url, marker, netns_pid, frozen)
    host = parts.hostname or ""
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    body = f'{{"timeout_s": {HOLD_TIMEOUT_S}}}'
    path = path.replace("\\", "\\\\").replace("%", "%%")  # printf's format: taken literally
    where = f"[{host}]" if ":" in host else host
    request = (
        f"POST {path} HTTP/1.1\\r\\nHost: {where}:{int(port)}\\r\\n"
        "Content-Type: application/json\\r\\n"
        f"Content-Length: {len(body.encode())}\\r\\nConnection: close\\r\\n\\r\\n{body}"
    )
    first = ""
    if frozen is not None:
        first += f"  printf '%s\\n' \"$EPOCHREALTIME\" > {shlex.quote(str(frozen))}\n"
    enter = f"nsenter -t {int(netns_pid)} -n " if netns_pid is not None else ""
    first += f'  {enter}timeout {CURL_TIMEOUT_S} /bin/bash "$0" --ask\n  exit 0\n'
    return (
        "#!/bin/bash\n"
        "# mecmig: hold the service's traffic at the controller once CRIU has frozen it\n"
        f'[ "$CRTOOLS_SCRIPT_ACTION" = {HOLD_ACTION} ] || exit 0\n'
        "LC_ALL=C\n"
        f'if [ "$1" != --ask ]; then\n{first}fi\n'
        "trap '' PIPE\n"
        + f"{{ exec 3<>/dev/tcp/{shlex.quote(host)}/{int(port)}; }} 2>/dev/null || exit 0\n"
        f"printf {shlex.quote(request)} >&3 || exit 0\n"
        f"IFS= read -r -t {CURL_TIMEOUT_S} status <&3 || exit 0\n"
        f'case "$status" in "HTTP/1."?" 2"*) : > {shlex.quote(str(marker))} ;; esac\n'
        "exit 0\n"
    )


def _curl_script(url: str, marker: Path, netns_pid: int | None, frozen: Path | None) -> str:
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
