"""Capability names: every one the kernel knows, Podman's default set, and why each is in it."""

from __future__ import annotations

import pytest

from ground.capabilities import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    WHY_DEFAULT,
    WHY_NOT_DEFAULT,
    capabilities,
    capability,
)


def test_every_kernel_capability_once_in_the_kernels_order() -> None:
    assert len(ALL_CAPABILITIES) == 41 == len(set(ALL_CAPABILITIES))  # 0 .. CAP_LAST_CAP (40)
    assert ALL_CAPABILITIES[0] == "CAP_CHOWN" and ALL_CAPABILITIES[21] == "CAP_SYS_ADMIN"
    assert ALL_CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"


def test_the_default_is_podmans_each_with_its_reason() -> None:
    assert {c.removeprefix("CAP_") for c in DEFAULT_CAPABILITIES} == {
        "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETFCAP",
        "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }  # fmt: skip
    assert set(WHY_DEFAULT) == set(DEFAULT_CAPABILITIES)
    assert all(len(why) > 20 for why in WHY_DEFAULT.values())


def test_dockers_extra_ones_are_left_out_with_a_reason() -> None:
    assert set(WHY_NOT_DEFAULT) == {"CAP_NET_RAW", "CAP_MKNOD", "CAP_AUDIT_WRITE"}
    assert not set(WHY_NOT_DEFAULT) & set(DEFAULT_CAPABILITIES)
    assert set(WHY_NOT_DEFAULT) <= set(ALL_CAPABILITIES)


@pytest.mark.parametrize("name", ["CHOWN", "CAP_CHOWN", "chown", "cap_chown", " Chown "])
def test_a_name_with_or_without_cap_in_any_case(name: str) -> None:
    assert capability(name) == "CAP_CHOWN"


@pytest.mark.parametrize("name", ["FLY", "CAP_", "", "CAP_CAP_CHOWN", "NET RAW"])
def test_an_unknown_name_is_refused_with_the_known_ones(name: str) -> None:
    with pytest.raises(ValueError, match="is not a Linux capability") as info:
        capability(name)
    assert "CHOWN, DAC_OVERRIDE" in str(info.value) and "CHECKPOINT_RESTORE" in str(info.value)


def test_a_set_is_canonical_once_each_in_kernel_order() -> None:
    assert capabilities(["kill", "CHOWN", "CAP_KILL"]) == ("CAP_CHOWN", "CAP_KILL")
    assert capabilities([]) == ()
