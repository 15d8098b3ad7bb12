"""The bounds of everything a caller can hand the controller, in one place.

The REST models (`controller.api_models`) put them in the OpenAPI document, and the model
(`controller.state`) checks them again for in-process callers, before it changes anything. Each
bound says where it comes from: OpenFlow's field widths, or what a 2-core edge site can mean.
"""

from __future__ import annotations

# A rate: 100 Gbit/s is above every link an edge site has; OpenFlow meters count kbit/s in 32 bits
# (4.29 Tbit/s), so a rate, and the sum of the rates that share one meter, always fits.
MAX_RATE_BPS = 100 * 10**9
# A meter burst in kbit (a 32-bit field): up to 1 s at the largest rate. Reservations that select
# the same packets share one meter at their summed burst, which `shared_meters` caps at 32 bits.
MAX_BURST_KB = 100_000_000
MAX_OF_UINT32 = 0xFFFFFFFF
# TCP/UDP ports.
MIN_L4_PORT, MAX_L4_PORT = 1, 65535
# A switch port an instance can be plugged into: OpenFlow 1.3's physical range (OFPP_MAX).
MIN_SWITCH_PORT, MAX_SWITCH_PORT = 1, 0xFFFFFF00
# Reservation ids are meter ids (at most OFPM_MAX) and the low bits of a 64-bit cookie.
MAX_RESERVATION_ID = 0xFFFF0000
# How long traffic may be held at the controller.
MAX_HOLD_S = 3600.0
# Names of hosts, sites, switches and instances: the scenario's (short, lowercase) and the learned
# hosts' (`learned-02:00:0a:00:00:07`) alike.
MAX_NAME_LENGTH = 64
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
# The free-text owner of a reservation (e.g. `mig=7`): printable ASCII.
MAX_OWNER_LENGTH = 128
OWNER_PATTERN = r"^[ -~]*$"
# A rate as text: a number and a unit ('40Mbit', '1.5 Gbit/s', '500kbps'; units in any case, as
# ground.units reads them). The pattern cannot say the value's bounds: those get a 422 of their own.
MAX_RATE_TEXT_LENGTH = 32
RATE_TEXT_PATTERN = r"^[0-9]+(\.[0-9]+)? ?([kKmMgG]?([bB][iI][tT]|[bB][pP][sS]))?(/s)?$"
# A request body: the largest real one is a reservation of a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
