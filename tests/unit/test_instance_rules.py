"""Pure rules of instances: the status table, names, passwords."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest

from nubes.domain import instance_states as states
from nubes.domain.names import check_hostname, expand
from nubes.domain.passwords import check_password, sha512_crypt
from nubes.errors import ApiError


@pytest.mark.parametrize(
    "action, status, allowed",
    [
        ("StartInstance", "Stopped", True),
        ("StartInstance", "Running", False),
        ("StartInstance", "Pending", True),  # queued: libcloud starts right after CreateInstance
        ("StopInstance", "Running", True),
        ("StopInstance", "Stopped", False),
        ("StopInstance", "Starting", True),
        ("RebootInstance", "Running", True),
        ("RebootInstance", "Stopped", False),
        ("DeleteInstance", "Stopped", True),
        ("DeleteInstance", "Running", False),
        ("ForceDeleteInstance", "Running", True),
        ("ModifyInstanceSpec", "Running", False),
        ("ModifyInstanceSpec", "Stopped", True),
    ],
)
def test_status_table(action: str, status: str, allowed: bool) -> None:
    if allowed:
        states.check(action, "i-1", status)
    else:
        with pytest.raises(ApiError) as info:
            states.check(action, "i-1", status)
        assert (info.value.code, info.value.http_status) == ("IncorrectInstanceStatus", 403)


def test_agent_steps() -> None:
    assert states.next_status("Pending", "built_running") == "Starting"
    assert states.next_status("Pending", "built_stopped") == "Stopped"
    assert states.next_status("Starting", "guest_up") == "Running"
    assert states.next_status("Stopping", "reboot_off") == "Starting"
    assert states.next_status("Stopped", "guest_up") is None


def test_name_sequences() -> None:
    assert expand("web-[1,3]", 3, False, "InstanceName") == ["web-001", "web-002", "web-003"]
    assert expand("db", 2, True, "InstanceName") == ["db001", "db002"]
    assert expand("db", 2, False, "InstanceName") == ["db", "db"]
    with pytest.raises(ApiError):
        expand("a[1,1]", 10, False, "HostName")  # 10 does not fit in one digit
    with pytest.raises(ApiError):
        expand("a[1,2]b[1,2]", 2, False, "HostName")


@pytest.mark.parametrize("name", ["a", "-ab", "ab-", "a..b", "a b", "x" * 65])
def test_bad_hostnames(name: str) -> None:
    with pytest.raises(ApiError) as info:
        check_hostname(name)
    assert info.value.code == "InvalidHostName.Malformed"


@pytest.mark.parametrize("password", ["Passw0rd!", "abcDEF123", "a1!B2@c3#"])
def test_good_passwords(password: str) -> None:
    check_password(password)


@pytest.mark.parametrize(
    "password", ["short1A", "alllowercase1", "NoDigitsHere", "x" * 31 + "A1", "Passw0rd\u00e9"]
)
def test_bad_passwords(password: str) -> None:
    with pytest.raises(ApiError) as info:
        check_password(password)
    assert info.value.code == "InvalidPassword.Malformed"


@pytest.mark.parametrize("password", ["Passw0rd!", "", "x" * 200, "pässwörd"])
def test_sha512_crypt_matches_glibc(password: str) -> None:
    hashed = sha512_crypt(password)
    assert hashed.startswith("$6$") and _system_crypt(password, hashed) == hashed


def _system_crypt(password: str, setting: str) -> str:
    """crypt(3) of the system's libcrypt (libxcrypt), which checks /etc/shadow in the guest too;
    called through ctypes, as the deprecated `crypt` module (gone in Python 3.13) did."""
    name = ctypes.util.find_library("crypt")
    assert name, "libcrypt not found"
    crypt = ctypes.CDLL(name).crypt
    crypt.restype = ctypes.c_char_p
    crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    result = crypt(password.encode(), setting.encode())
    assert result is not None
    return bytes(result).decode()
