"""DHCP for the vSwitches of the linux network driver: one dnsmasq (DHCP only, `--port=0`) per
vSwitch, started inside the VPC namespace, with a static lease for each port and the gateway
as router. Its pid, hosts, lease and log files live in the VPC's run dir."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path

from nubes.drivers.network.base import NetworkError, PortNet, VpcNet, VSwitchNet
from nubes.drivers.network.proc import netns_exec, process_alive, process_cmdline

log = logging.getLogger(__name__)

DHCP_LEASE_TIME = "12h"


def _hostname(port: PortNet) -> str:
    name = re.sub(r"[^A-Za-z0-9-]", "-", port.hostname).strip("-")[:63]
    return name


class DhcpServers:
    """The dnsmasq processes of one driver; `vpc_dir` and `bridge_name` are the driver's."""

    def __init__(self, vpc_dir: Callable[[str], Path], bridge_name: Callable[[str], str]) -> None:
        self._vpc_dir = vpc_dir
        self._bridge_name = bridge_name

    def files(self, vpc_id: str, vswitch_id: str) -> dict[str, Path]:
        base = self._vpc_dir(vpc_id)
        return {k: base / f"dnsmasq-{vswitch_id}.{k}" for k in ("pid", "hosts", "leases", "log")}

    def _argv(self, vpc_id: str, vsw: VSwitchNet) -> list[str]:
        files = self.files(vpc_id, vsw.vswitch_id)
        net = ipaddress.IPv4Network(vsw.cidr, strict=False)
        return [
            "dnsmasq",
            "--conf-file=/dev/null",
            "--port=0",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            f"--interface={self._bridge_name(vsw.vswitch_id)}",
            "--except-interface=lo",
            f"--dhcp-range={net.network_address},static,{net.netmask},{DHCP_LEASE_TIME}",
            f"--dhcp-option=option:router,{vsw.gateway}",
            f"--dhcp-hostsfile={files['hosts']}",
            f"--dhcp-leasefile={files['leases']}",
            f"--pid-file={files['pid']}",
            f"--log-facility={files['log']}",
            "--dhcp-authoritative",
            # dnsmasq drops root for user "nobody", who must then be able to re-read the hosts
            # file on SIGHUP; if run_dir is not reachable for others (a 0700 home, a pytest
            # tmp dir), it keeps running as root instead.
            *([] if _others_can_enter(self._vpc_dir(vpc_id)) else ["--user=root"]),
        ]

    def _hosts_text(self, vpc: VpcNet, vswitch_id: str) -> str:
        lines = []
        for port in sorted(vpc.ports, key=lambda p: p.port_id):
            if port.vswitch_id != vswitch_id:
                continue
            fields = [port.mac.lower(), port.ip]
            hostname = _hostname(port)
            if hostname:
                fields.append(hostname)
            lines.append(",".join(fields))
        return "".join(line + "\n" for line in lines)

    def _pid(self, vpc_id: str, vswitch_id: str, argv: list[str] | None = None) -> int | None:
        """The pid of the running dnsmasq of a vSwitch (with exactly `argv`, if given)."""
        pid_file = self.files(vpc_id, vswitch_id)["pid"]
        try:
            pid = int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not process_alive(pid):
            return None
        cmdline = process_cmdline(pid)
        if not cmdline or os.path.basename(cmdline[0]) != "dnsmasq":
            return None
        if f"--pid-file={pid_file}" not in cmdline:
            return None
        if argv is not None and cmdline[1:] != argv[1:]:
            return -pid  # ours, but started with another configuration
        return pid

    def pid(self, vpc_id: str, vswitch_id: str) -> int | None:
        """The pid of the vSwitch's dnsmasq if it runs (for tests and diagnostics)."""
        pid = self._pid(vpc_id, vswitch_id)
        return pid if pid and pid > 0 else None

    def sync(self, vpc: VpcNet, ns: str) -> None:
        wanted = {v.vswitch_id for v in vpc.vswitches}
        for pid_file in self._vpc_dir(vpc.vpc_id).glob("dnsmasq-*.pid"):
            vswitch_id = pid_file.name[len("dnsmasq-") : -len(".pid")]
            if vswitch_id not in wanted:
                self.stop(vpc.vpc_id, vswitch_id)
        for vsw in vpc.vswitches:
            files = self.files(vpc.vpc_id, vsw.vswitch_id)
            text = self._hosts_text(vpc, vsw.vswitch_id)
            changed = not files["hosts"].exists() or files["hosts"].read_text() != text
            if changed:
                tmp = files["hosts"].with_suffix(".tmp")
                tmp.write_text(text)
                os.chmod(tmp, 0o644)
                os.replace(tmp, files["hosts"])
            argv = self._argv(vpc.vpc_id, vsw)
            pid = self._pid(vpc.vpc_id, vsw.vswitch_id, argv)
            if pid is not None and pid < 0:
                _kill(-pid)
                pid = None
            if pid is not None and changed:
                running = pid
                if _drop_stale_leases(files["leases"], text, before=lambda: _kill(running)):  # noqa: B023 (called at once)
                    pid = None  # dnsmasq holds leases in memory too: it restarts from the pruned file
            if pid is None:
                self._start(ns, vpc.vpc_id, vsw, argv)
            elif changed:
                self._reload(pid, files)

    def _reload(self, pid: int, files: dict[str, Path]) -> None:
        """SIGHUP makes dnsmasq re-read --dhcp-hostsfile. Wait (briefly) until its log says it
        has, so a guest that asks right after `sync` returns gets its lease."""
        log_file = files["log"]
        offset = log_file.stat().st_size if log_file.exists() else 0
        os.kill(pid, signal.SIGHUP)
        needle = f"read {files['hosts']}".encode()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                with open(log_file, "rb") as f:
                    f.seek(offset)
                    text = f.read()
            except FileNotFoundError:
                return
            if needle in text:
                return
            if b"cannot read" in text:
                log.warning("dnsmasq %d could not re-read %s", pid, files["hosts"])
                return
            time.sleep(0.002)
        log.warning("dnsmasq %d did not confirm re-reading %s", pid, files["hosts"])

    def _start(self, ns: str, vpc_id: str, vsw: VSwitchNet, argv: list[str]) -> None:
        files = self.files(vpc_id, vsw.vswitch_id)
        self.kill_all(vpc_id, files["pid"])  # one whose pid file was lost, if any
        files["pid"].unlink(missing_ok=True)
        # dnsmasq daemonizes; its parent exits once the daemon is set up (or failed).
        netns_exec(ns, argv)
        deadline = time.monotonic() + 5
        while self._pid(vpc_id, vsw.vswitch_id) is None:
            if time.monotonic() > deadline:
                tail = files["log"].read_text(errors="replace")[-2000:] if files["log"].exists() else ""
                raise NetworkError(f"dnsmasq for {vsw.vswitch_id} did not start: {tail}")
            time.sleep(0.01)

    def stop(self, vpc_id: str, vswitch_id: str) -> None:
        pid = self._pid(vpc_id, vswitch_id)
        if pid is not None:
            _kill(abs(pid))
        for path in self.files(vpc_id, vswitch_id).values():
            path.unlink(missing_ok=True)

    def kill_all(self, vpc_id: str, pid_file: Path | None = None) -> None:
        """Kill every dnsmasq whose pid file lies in this VPC's run dir (or is `pid_file`),
        found in /proc: pid files may be missing after a crash."""
        marker = f"--pid-file={pid_file}" if pid_file else f"--pid-file={self._vpc_dir(vpc_id)}/"
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            cmdline = process_cmdline(int(entry))
            if not cmdline or os.path.basename(cmdline[0]) != "dnsmasq":
                continue
            if any(arg == marker if pid_file else arg.startswith(marker) for arg in cmdline):
                _kill(int(entry))


def _others_can_enter(path: Path) -> bool:
    """Whether every directory from / down to `path` is searchable by any user."""
    try:
        return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))
    except OSError:
        return False


def _drop_stale_leases(leases: Path, hosts_text: str, before: Callable[[], None]) -> bool:
    """Remove from a dnsmasq lease file the leases no static host entry backs any more (an
    address whose interface is gone, or given to another MAC). Until they go, dnsmasq refuses
    the address to its new owner. Calls `before` (stopping dnsmasq, which rewrites the file
    from memory) first, and only when there is something to drop. True if it dropped any."""
    try:
        lines = leases.read_text().splitlines()
    except FileNotFoundError:
        return False
    wanted = {tuple(entry.split(",")[:2]) for entry in hosts_text.splitlines()}
    keep = [line for line in lines if tuple(line.split()[1:3]) in wanted]
    if len(keep) == len(lines):
        return False
    before()
    lines = leases.read_text().splitlines() if leases.exists() else []
    keep = [line for line in lines if tuple(line.split()[1:3]) in wanted]
    tmp = leases.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, leases)
    return True


def _kill(pid: int, timeout: float = 2.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
        time.sleep(0.005)
