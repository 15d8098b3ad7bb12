"""`mecmig controller`: run our os-ken app (os-ken 4 has no manager command of its own)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from controller.settings import Settings

APPS = ["os_ken.topology.switches", "controller.app"]
CLOSE_TIMEOUT_S = 1.0
ECHO_INTERVAL_S = 2.0
ECHO_MISSES = 4
log = logging.getLogger("mecmig.controller")


def run_controller(settings: Settings, of_port: int = 6653, verbose: bool = False) -> None:
    """Start os-ken with topology discovery and the mecmig app; return on SIGINT or SIGTERM."""
    os.environ.update(settings.to_env())
    import os_ken.topology.switches  # noqa: F401 - registers --observe-links before parsing
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    cfg.CONF(args=["--ofp-tcp-listen-port", str(of_port), "--observe-links"], project="mecmig")
    # Echo requests: a switch that stops answering (gone without closing its connection) is
    # disconnected after ECHO_MISSES * ECHO_INTERVAL_S; os-ken sends none by default, and these
    # are no command-line options. (A switch that closes its connection is noticed by the app
    # itself: controller.app.connection_alive.)
    cfg.CONF.set_override("echo_request_interval", ECHO_INTERVAL_S)
    cfg.CONF.set_override("maximum_unreplied_echo_requests", ECHO_MISSES)
    logging.getLogger("os_ken").setLevel(logging.DEBUG if verbose else logging.WARNING)

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # AppManager.run_apps() would block in a join that signals cannot interrupt: do its steps here
    manager = AppManager.get_instance()
    code = 0
    try:
        manager.load_apps(APPS)
        manager.instantiate_apps(**manager.create_contexts())
        stop.wait()
    except Exception as exc:  # noqa: BLE001 - report any start-up failure, then exit non-zero
        log.error("controller failed: %s", exc, exc_info=verbose)
        code = 3
    finally:
        # os-ken 4's topology app never ends its LLDP threads, so AppManager.close() blocks for
        # ever: give it a few seconds (our app stops first: REST server, worker), then leave.
        if "MecController" in manager.applications:
            manager.uninstantiate("MecController")
        closer = threading.Thread(target=manager.close, daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
        log.info("controller stopped")
        logging.shutdown()
        os._exit(code)
