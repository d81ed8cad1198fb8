"""Done when (instances issue): through the official SDK, a Debian instance with a key pair and
user data runs, `nubes ssh` logs in (only once a security group opens port 22), the guest
reads its own instance-id from the metadata service, the user data ran; reboot, stop, start
and delete work and leave nothing behind. And: SIGKILL of the agent while an instance boots,
then a restart, ends with the instance Running and one QEMU process for it."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as em
from alibabacloud_tea_openapi.exceptions import ClientException

from nubes.guest.images import ImageManifest
from tests.conftest import LiveServer, start_server, stop_server, tea_ecs
from tests.e2e.conftest import make_net

pytestmark = pytest.mark.vm

REGION = "cn-hangzhou"
SMALL = "ecs.t5-lc2m1.nano"  # 1 vCPU, 512 MiB: kind to software emulation
REAL_SERVER = ("--driver", "real", "--no-build-images", "--throttle-rate", "0")


def _start(tmp: Path, images_dir: Path, netns_prefix: str | None = None) -> LiveServer:
    """A server with real drivers; `netns_prefix`: one that ran before on this data directory
    (an agent restart), else a new one."""
    os.environ["NUBES_IMAGES_DIR"] = str(images_dir)
    args = list(REAL_SERVER)
    return start_server(
        tmp, None, "sqlite", args + (["--netns-prefix", netns_prefix] if netns_prefix else [])
    )


def launch_tiny(ecs: Any, vswitch_id: str, group_id: str, **fields: Any) -> str:
    """A tiny instance (busybox: console only) of the small type, with the RunInstancesRequest
    `fields` given; its ID."""
    [instance_id] = ecs.run_instances(
        em.RunInstancesRequest(
            region_id=REGION,
            image_id=image_id(ecs, "nubes:tiny_x64"),
            instance_type=SMALL,
            v_switch_id=vswitch_id,
            security_group_id=group_id,
            **fields,
        )
    ).body.instance_id_sets.instance_id_set
    return str(instance_id)


def _teardown(server: LiveServer) -> None:
    stop_server(server)
    # Safety net: the tests delete their instances; a failed test may not have.
    subprocess.run(["pkill", "-9", "-f", f"{server.data_dir}/run/vms"], check=False)
    from nubes.drivers.network.linux import LinuxNetworkDriver

    LinuxNetworkDriver(server.data_dir / "run" / "network", prefix=server.netns_prefix).sync([])


@contextlib.contextmanager
def real_server(directory: Path, images_dir: Path) -> Iterator[LiveServer]:
    """A server with real drivers on `directory`, torn down (with its VMs) afterwards."""
    server = _start(directory, images_dir)
    try:
        yield server
    finally:
        _teardown(server)


@pytest.fixture(scope="module")
def cloud(
    images_dir: Path,
    debian_image: ImageManifest,
    tiny_image: ImageManifest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    server = _start(tmp_path_factory.mktemp("cloud"), images_dir)
    yield server
    _teardown(server)


def qemu_processes(instance_id: str) -> list[str]:
    out = subprocess.run(
        ["pgrep", "-f", f"qemu-system-x86_64 .*{instance_id}"], check=False, capture_output=True, text=True
    ).stdout
    return out.split()


def status_of(ecs: Any, instance_id: str) -> str:
    return str(
        ecs.describe_instance_attribute(
            em.DescribeInstanceAttributeRequest(instance_id=instance_id)
        ).body.status
    )


def wait_status(ecs: Any, instance_id: str, wanted: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    status = status_of(ecs, instance_id)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.5)
        status = status_of(ecs, instance_id)
    return status


def image_id(ecs: Any, family: str) -> str:
    images = ecs.describe_images(em.DescribeImagesRequest(region_id=REGION, image_owner_alias="system")).body
    return str(next(i.image_id for i in images.images.image if i.image_family == family))


def nubes_ssh(
    server: LiveServer, key_file: Path, instance_id: str, *command: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "NUBES_ENDPOINT": server.endpoint,
        "NUBES_REGION": REGION,
        "NUBES_ACCESS_KEY_ID": server.extra["key"][0],
        "NUBES_ACCESS_KEY_SECRET": server.extra["key"][1],
    }
    return server.nubes("ssh", "-i", str(key_file), instance_id, "--", *command, check=False, env=env)


def test_debian_instance_end_to_end(cloud: LiveServer, tmp_path: Path) -> None:
    net = make_net(cloud, "10.80.0.0/16")
    cloud.extra = {"key": net.key}
    ecs = net.ecs
    group = net.group()
    private_key = ecs.create_key_pair(em.CreateKeyPairRequest(region_id=REGION, key_pair_name="e2e")).body
    key_file = tmp_path / "e2e.pem"
    key_file.write_text(private_key.private_key_body)
    key_file.chmod(0o600)
    script = "#!/bin/sh\necho ran >> /root/userdata-ran\n"
    [instance_id] = ecs.run_instances(
        em.RunInstancesRequest(
            region_id=REGION,
            image_id=image_id(ecs, "nubes:debian_12_x64"),
            instance_type=SMALL,
            v_switch_id=net.vswitch_id,
            security_group_id=group,
            key_pair_name="e2e",
            host_name="e2e-host",
            user_data=base64.b64encode(script.encode()).decode(),
        )
    ).body.instance_id_sets.instance_id_set
    assert wait_status(ecs, instance_id, "Running") == "Running"
    assert len(qemu_processes(instance_id)) == 1

    # The group does not open port 22: no login.
    denied = nubes_ssh(cloud, key_file, instance_id, "true")
    assert denied.returncode != 0
    ecs.authorize_security_group(
        em.AuthorizeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=group,
            ip_protocol="tcp",
            port_range="22/22",
            source_cidr_ip="0.0.0.0/0",
        )
    )
    deadline = time.monotonic() + 120
    login = nubes_ssh(cloud, key_file, instance_id, "hostname")
    while login.returncode != 0 and time.monotonic() < deadline:
        time.sleep(2)
        login = nubes_ssh(cloud, key_file, instance_id, "hostname")
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == "e2e-host"
    # Read as a guest's agent does, with a retry: twice in CI (out of many runs, under load) one
    # read came back empty; the retry keeps the test about what the guest gets, and the
    # attempts' errors are kept to tell what happened when every one fails.
    attempts = []
    for _ in range(3):
        metadata = nubes_ssh(
            cloud,
            key_file,
            instance_id,
            "timeout",
            "20",
            "busybox",
            "wget",
            "-qO-",
            "http://100.100.100.200/latest/meta-data/instance-id",
        )
        attempts.append((metadata.returncode, metadata.stdout.strip(), metadata.stderr.strip()[-300:]))
        if metadata.stdout.strip() == instance_id:
            break
        time.sleep(2)
    assert metadata.stdout.strip() == instance_id, attempts
    ran = nubes_ssh(cloud, key_file, instance_id, "sh", "-c", "sleep 1; cat /root/userdata-ran")
    assert ran.stdout.split() == ["ran"]
    assert nubes_ssh(cloud, key_file, instance_id, "exit", "3").returncode == 3  # exit status passed on

    ecs.reboot_instance(em.RebootInstanceRequest(instance_id=instance_id))
    assert wait_status(ecs, instance_id, "Running") == "Running"
    again = nubes_ssh(cloud, key_file, instance_id, "cat", "/root/userdata-ran")
    assert again.returncode == 0 and again.stdout.split() == ["ran"]  # user data ran once, not per boot

    ecs.stop_instance(em.StopInstanceRequest(instance_id=instance_id))
    assert wait_status(ecs, instance_id, "Stopped", 180) == "Stopped"
    assert qemu_processes(instance_id) == []
    ecs.start_instance(em.StartInstanceRequest(instance_id=instance_id))
    assert wait_status(ecs, instance_id, "Running") == "Running"
    assert nubes_ssh(cloud, key_file, instance_id, "true").returncode == 0

    disks = list((cloud.data_dir / "disks").glob("*.qcow2"))
    assert disks, "the system disk is a qcow2 file"
    ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    with pytest.raises(ClientException) as gone:
        status_of(ecs, instance_id)
    assert gone.value.code == "InvalidInstanceId.NotFound"
    deadline = time.monotonic() + 60
    while (qemu_processes(instance_id) or any(d.exists() for d in disks)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert qemu_processes(instance_id) == []
    assert not any(d.exists() for d in disks)
    assert not (cloud.data_dir / "run" / "vms" / instance_id).exists()
    netns = f"{cloud.netns_prefix}-{net.vpc_id}"

    def taps() -> str:
        links = subprocess.run(
            ["ip", "-n", netns, "-o", "link"], check=False, capture_output=True, text=True
        ).stdout
        return " ".join(line.split(":")[1].strip() for line in links.splitlines() if ": ntp" in line)

    deadline = time.monotonic() + 30  # the agent unplugs the port right after the VM is gone
    while taps() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert taps() == ""  # no tap left in the VPC


def test_agent_killed_while_booting_recovers(
    images_dir: Path, tiny_image: ImageManifest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("sigkill")
    server = _start(tmp, images_dir)
    try:
        net = make_net(server, "10.81.0.0/16")
        ecs = net.ecs
        instance_id = launch_tiny(ecs, net.vswitch_id, net.group())
        deadline = time.monotonic() + 60
        while not qemu_processes(instance_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert qemu_processes(instance_id), "the VM never started"
        assert status_of(ecs, instance_id) == "Starting"
        server.process.send_signal(signal.SIGKILL)  # the agent dies mid-boot
        server.process.wait(timeout=30)
        # The VM outlives the agent (QEMU's daemonizing parent may linger a moment).
        deadline = time.monotonic() + 30
        while len(qemu_processes(instance_id)) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(qemu_processes(instance_id)) == 1

        server = _start(tmp, images_dir, server.netns_prefix)
        ecs = tea_ecs(server, net.key)
        assert wait_status(ecs, instance_id, "Running", 300) == "Running"
        assert len(qemu_processes(instance_id)) == 1  # re-attached, not started twice
        # the new agent recorded the console (in the store, which the API reads) before Running
        output = ecs.get_instance_console_output(
            em.GetInstanceConsoleOutputRequest(region_id=REGION, instance_id=instance_id)
        ).body.console_output
        assert f"NUBES-READY instance-id={instance_id}" in base64.b64decode(output).decode(errors="replace")
        ecs.delete_instance(em.DeleteInstanceRequest(instance_id=instance_id, force=True))
    finally:
        _teardown(server)


def test_private_ip_reused_after_delete_gets_dhcp(cloud: LiveServer) -> None:
    """The lowest free address goes to the next instance after a delete; its new MAC gets the
    DHCP lease at once (the old lease is dropped), so the guest reaches the metadata service
    on its first boot and reports its own instance id."""
    net = make_net(cloud, "10.82.0.0/16")
    ecs = net.ecs
    group = net.group()

    def launch() -> tuple[str, str]:
        [iid] = ecs.run_instances(
            em.RunInstancesRequest(
                region_id=REGION,
                image_id=image_id(ecs, "nubes:tiny_x64"),
                instance_type=SMALL,
                v_switch_id=net.vswitch_id,
                security_group_id=group,
            )
        ).body.instance_id_sets.instance_id_set
        assert wait_status(ecs, iid, "Running", 300) == "Running"
        attribute = ecs.describe_instance_attribute(em.DescribeInstanceAttributeRequest(instance_id=iid)).body
        return iid, str(attribute.vpc_attributes.private_ip_address.ip_address[0])

    def ready_line(iid: str) -> str:
        output = ecs.get_instance_console_output(
            em.GetInstanceConsoleOutputRequest(region_id=REGION, instance_id=iid)
        ).body.console_output
        text = base64.b64decode(output).decode(errors="replace")
        return next((line.strip() for line in text.splitlines() if line.startswith("NUBES-READY")), "")

    first, first_ip = launch()
    assert ready_line(first) == f"NUBES-READY instance-id={first}"
    ecs.delete_instance(em.DeleteInstanceRequest(instance_id=first, force=True))

    def released() -> bool:  # the agent releases the address with the interface, after the VM
        enis = ecs.describe_network_interfaces(
            em.DescribeNetworkInterfacesRequest(region_id=REGION, instance_id=first)
        ).body.network_interface_sets.network_interface_set
        return not qemu_processes(first) and not enis

    deadline = time.monotonic() + 60
    while not released() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert released()
    second, second_ip = launch()
    assert second_ip == first_ip
    assert ready_line(second) == f"NUBES-READY instance-id={second}"
    ecs.delete_instance(em.DeleteInstanceRequest(instance_id=second, force=True))
