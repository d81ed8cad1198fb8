"""`nubes ssh`: a shell on (or a command run in) a running instance, through its VPC.

The connection starts in the VPC's network namespace on this host (so it needs root and the
host that runs the instance) and meets the instance's security groups like any other: a
group that does not open port 22 to the vSwitch gateway (or 0.0.0.0/0) keeps it out."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import NoReturn

from nubes.client import Credentials, call

SSH_OPTIONS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "BatchMode=yes",
]


class SshError(Exception):
    """The instance cannot be reached from here."""


def locate(creds: Credentials, instance_id: str) -> tuple[str, str]:
    """(VPC ID, private IP) of a Running instance."""
    body = call(
        creds, "ecs", "DescribeInstances", {"RegionId": creds.region_id, "InstanceIds": f'["{instance_id}"]'}
    )
    instances = body.get("Instances", {}).get("Instance", [])
    if not instances:
        raise SshError(f"no instance {instance_id} in region {creds.region_id}")
    instance = instances[0]
    if instance.get("Status") != "Running":
        raise SshError(f"{instance_id} is {instance.get('Status')}, not Running")
    vpc = instance["VpcAttributes"]
    addresses = vpc.get("PrivateIpAddress", {}).get("IpAddress", [])
    if not addresses:
        raise SshError(f"{instance_id} has no private address")
    return str(vpc["VpcId"]), str(addresses[0])


def vpc_namespace(vpc_id: str) -> str:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.endswith(f"-{vpc_id}"):
            return name
    raise SshError(
        f"the VPC {vpc_id} has no namespace on this host: run nubes ssh, as root, on the host that "
        "runs the instance"
    )


def exec_ssh(netns: str, user: str, address: str, identity: str | None, command: list[str]) -> NoReturn:
    if shutil.which("ssh") is None:
        raise SshError("the ssh client is missing (Debian package openssh-client)")
    argv = ["ip", "netns", "exec", netns, "ssh", *SSH_OPTIONS]
    if identity:
        argv += ["-i", identity]
    argv += [f"{user}@{address}", *command]
    os.execvp(argv[0], argv)
