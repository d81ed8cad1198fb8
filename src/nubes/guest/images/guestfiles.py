"""The files nubes puts into its guests: the initramfs /init, the boot and shutdown scripts
(busybox init runs them), the DHCP hook, and the init agent that applies the instance's
metadata. Both images (tiny and debian-12) carry the same scripts; every script runs under
busybox's shell (`/bin/busybox sh`) and calls busybox applets through `$BB`, so it behaves
the same whatever else the image has.

Kept as Python strings (not package data) so that an editable install, a wheel and a source
tree all carry them, and so that the builder can hash them: any change here changes the
builder version and the cached images are rebuilt."""

from __future__ import annotations

import hashlib

# The modules the initramfs loads (their dependencies are added): PCI and MMIO virtio (q35/pc
# and microvm), the system disk, the network, ext4 (+ the crc32c it wants), the ACPI power
# button and its input events (for acpid), and the virtio RNG (entropy for sshd, if present).
INITRAMFS_MODULES = (
    "virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net", "virtio_rng",
    "crc32c_generic", "ext4", "button", "evdev",
)

# /init of the initramfs: load the drivers, wait for the root device, mount it, switch to it.
INITRAMFS_INIT = r"""#!/bin/sh
# nubes initramfs: load the drivers the root file system needs, mount it, switch to it.
# Kernel arguments: root=/dev/vda|LABEL=..|UUID=.. (default /dev/vda), rootfstype= (ext4),
# rootflags=, ro|rw (rw), init= (/sbin/init), nubes.rdshell (a shell instead of switching),
# nubes.trace (time stamps of the boot steps on the console, here and in the nubes scripts).
export PATH=/sbin:/bin
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=755 devtmpfs /dev

msg() { echo "nubes-initramfs: $*" > /dev/console; }
rescue() {
	msg "$*"
	msg "starting a shell on the console"
	exec setsid cttyhack sh
}

root=/dev/vda rootfstype=ext4 rootflags= mode=rw init=/sbin/init rdshell=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
		root=*) root="${arg#root=}" ;;
		rootfstype=*) rootfstype="${arg#rootfstype=}" ;;
		rootflags=*) rootflags="${arg#rootflags=}" ;;
		init=*) init="${arg#init=}" ;;
		ro) mode=ro ;;
		rw) mode=rw ;;
		nubes.rdshell) rdshell=1 ;;
		nubes.trace) trace=1 ;;
	esac
done
trace() { [ -n "$trace" ] && read -r up _ < /proc/uptime && echo "[$up] nubes-initramfs: $*" > /dev/console; }

while read -r module; do
	trace "insmod $module"
	insmod "/lib/modules/$module" 2>/dev/null
done < /lib/modules/load.order
trace "modules loaded"

tries=0
while :; do
	case "$root" in
		LABEL=*|UUID=*) dev="$(findfs "$root" 2>/dev/null)" ;;
		*) dev="$root" ;;
	esac
	[ -n "$dev" ] && [ -b "$dev" ] && break
	tries=$((tries + 1))
	[ "$tries" -ge 200 ] && rescue "root device $root did not appear"
	sleep 0.05
done
[ -n "$rdshell" ] && rescue "nubes.rdshell given"
trace "root device $dev"

mkdir -p /newroot
mount -t "$rootfstype" -o "$mode${rootflags:+,$rootflags}" "$dev" /newroot || rescue "cannot mount $dev ($rootfstype)"
[ -e "/newroot$init" ] || [ -L "/newroot$init" ] || rescue "$init is not on $dev"
trace "switch_root"
for fs in dev proc sys; do
	mount --move "/$fs" "/newroot/$fs" || rescue "cannot move /$fs into the root file system"
done
exec switch_root /newroot "$init"
"""

INITTAB = """\
# nubes: busybox init. The boot and shutdown scripts are in /usr/lib/nubes.
::sysinit:/usr/lib/nubes/rc.sysinit
ttyS0::respawn:/bin/busybox getty -L 115200 ttyS0 vt100
::ctrlaltdel:/bin/busybox reboot
::shutdown:/usr/lib/nubes/rc.shutdown
"""

RC_SYSINIT = r"""#!/bin/busybox sh
# nubes: bring the system up; busybox init runs this at every boot (see /etc/inittab).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
BB=/bin/busybox
umask 022
read -r cmdline < /proc/cmdline
case " $cmdline " in *" nubes.trace "*) trace=1 ;; esac
trace() { [ -n "$trace" ] && read -r up _ < /proc/uptime && echo "[$up] nubes: $*" > /dev/console; }
trace "rc.sysinit"
mounted() {  # (shell built-ins only: every program started costs ~4 ms under emulation)
	while read -r _ mountpoint _; do
		[ "$mountpoint" = "$1" ] && return 0
	done < /proc/mounts
	return 1
}

[ -e /proc/mounts ] || $BB mount -t proc -o nosuid,nodev,noexec proc /proc
mounted /sys || $BB mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mounted /dev || $BB mount -t devtmpfs -o nosuid,mode=755 devtmpfs /dev
mounted /run || $BB mount -t tmpfs -o nosuid,nodev,mode=755,size=20% tmpfs /run
# early, so that few power button presses go unheard: the ACPI power button (QEMU
# system_powerdown) runs /etc/acpi/PWRF/00000080, which powers off
$BB acpid -c /etc/acpi -l /dev/null
$BB mkdir -p /dev/pts /dev/shm
mounted /dev/pts || $BB mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=000 devpts /dev/pts
mounted /dev/shm || $BB mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /dev/shm
[ -e /dev/fd ] || $BB ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || $BB ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || $BB ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || $BB ln -s /proc/self/fd/2 /dev/stderr
$BB mkdir -p /run/lock /run/nubes /tmp /var/lib/nubes
$BB chmod 1777 /run/lock /tmp
rootdev= rootopts=
while read -r dev mountpoint _ options _; do
	[ "$mountpoint" = / ] && rootdev="$dev" rootopts="$options"
done < /proc/mounts
case ",$rootopts," in *,ro,*) $BB mount -o remount,rw / ;; esac
mounted /sys/kernel/security || $BB mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mounted /sys/fs/cgroup || $BB mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup 2>/dev/null

trace "file systems mounted"

# a system disk larger than the image: grow the root file system (online), once per size
if [ "$rootdev" = /dev/vda ] && read -r sectors 2>/dev/null < /sys/class/block/vda/size; then
	read -r known 2>/dev/null < /var/lib/nubes/root-sectors
	if [ "$sectors" != "$known" ]; then
		if command -v resize2fs >/dev/null; then
			trace "resize2fs /dev/vda"
			resize2fs /dev/vda >> /var/log/nubes-init.log 2>&1 && echo "$sectors" > /var/lib/nubes/root-sectors
		else
			echo "$sectors" > /var/lib/nubes/root-sectors  # (no resize2fs in this image)
		fi
	fi
fi
# /dev/disk/by-id/virtio-<serial> for the virtio disks now and those plugged in later
/usr/lib/nubes/disk-links add
$BB setsid $BB uevent /usr/lib/nubes/uevent </dev/null >/dev/null 2>&1 &

$BB hostname -F /etc/hostname 2>/dev/null
$BB ip link set lo up

trace "dhcp"
# DHCP: eth0 before going on (the metadata service is reached through it), the others behind
for path in /sys/class/net/*; do
	ifc="${path##*/}"
	case "$ifc" in lo|sit*|tun*|tap*|docker*|veth*|br*) continue ;; esac
	set -- -i "$ifc" -s /usr/lib/nubes/udhcpc.script -p "/run/udhcpc.$ifc.pid" -O mtu -O staticroutes -b -T 1 -A 5
	if [ "$ifc" = eth0 ]; then
		$BB udhcpc "$@" -t 15 >/dev/null 2>&1
	else
		$BB udhcpc "$@" -t 3 >/dev/null 2>&1 &
	fi
done

# apply the metadata, start sshd, print the ready line; user data runs behind
trace "nubes-init"
/usr/lib/nubes/nubes-init
trace "nubes-init done"

# services that Debian packages install as init scripts (sshd is started above)
if [ -d /etc/rc2.d ]; then
	(
		for script in /etc/rc2.d/S*; do
			case "${script##*/}" in S??ssh|S??hwclock.sh|S??procps) continue ;; esac
			[ -x "$script" ] && "$script" start
		done
	) </dev/null >>/var/log/nubes-services.log 2>&1 &
fi
exit 0
"""

RC_SHUTDOWN = r"""#!/bin/busybox sh
# nubes: stop the system cleanly; busybox init runs this before it powers off or reboots.
BB=/bin/busybox
if [ -d /etc/rc0.d ]; then
	for script in /etc/rc0.d/K*; do
		case "${script##*/}" in K??ssh|K??hwclock.sh|K??procps|K??sendsigs|K??umount*|K??halt|K??reboot) continue ;; esac
		[ -x "$script" ] && "$script" stop </dev/null >/dev/null 2>&1
	done
fi
$BB kill -s TERM -1 2>/dev/null
$BB sleep 0.3
$BB kill -s KILL -1 2>/dev/null
$BB swapoff -a 2>/dev/null
$BB sync
for mnt in $($BB awk '$2 != "/" && $3 ~ /^(ext[234]|xfs|btrfs|vfat)$/ { print $2 }' /proc/mounts | $BB sort -r); do
	$BB umount "$mnt" 2>/dev/null || $BB mount -o remount,ro "$mnt" 2>/dev/null
done
$BB mount -o remount,ro / 2>/dev/null
$BB sync
exit 0
"""

# The ACPI power button event of busybox acpid ("PWRF", code 0x80).
ACPI_POWER_BUTTON = """#!/bin/busybox sh
# nubes: the ACPI power button (QEMU system_powerdown, ECS StopInstance) powers off.
exec /bin/busybox poweroff
"""

UDHCPC_SCRIPT = r"""#!/bin/busybox sh
# nubes: busybox udhcpc's event hook; configures $interface from its DHCP lease.
BB=/bin/busybox
state="/run/nubes/dhcp.$interface"
case "$1" in
	deconfig)
		$BB ip link set "$interface" up
		$BB ip -4 addr flush dev "$interface"
		$BB rm -f "$state"
		;;
	bound|renew)
		lease="$ip/${mask:-24} router=$router routes=$staticroutes mtu=$mtu"
		if [ "$(cat "$state" 2>/dev/null)" != "$lease" ]; then
			$BB ip -4 addr flush dev "$interface"
			$BB ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
			[ -n "$mtu" ] && $BB ip link set dev "$interface" mtu "$mtu"
			metric=$(cat "/sys/class/net/$interface/ifindex" 2>/dev/null || echo 0)
			if [ -n "$staticroutes" ]; then
				set -- $staticroutes
				while [ $# -ge 2 ]; do
					$BB ip route replace "$1" via "$2" dev "$interface" metric "$metric"
					shift 2
				done
			elif [ -n "$router" ]; then
				$BB ip route replace default via "${router%% *}" dev "$interface" metric "$metric"
			fi
			echo "$lease" > "$state"
			echo "nubes: $interface $ip/${mask:-24} via ${router%% *}" > /dev/console
		fi
		if [ "$interface" = eth0 ] && [ -n "$dns" ]; then
			{
				[ -n "$search" ] && echo "search $search"
				[ -z "$search" ] && [ -n "$domain" ] && echo "search $domain"
				for server in $dns; do echo "nameserver $server"; done
			} > /etc/resolv.conf
		fi
		;;
esac
exit 0
"""

# /dev/disk/by-id/virtio-<serial>[-partN], as udev names them (the disk's serial is the
# ECS disk id the host gave it).
DISK_LINKS = r"""#!/bin/busybox sh
# nubes: disk-links add|remove [vdX...]: /dev/disk/by-id/virtio-<serial> links for virtio disks.
BB=/bin/busybox
action="${1:-add}"
shift
[ $# -eq 0 ] && set -- $(cd /sys/class/block 2>/dev/null && echo vd*)
$BB mkdir -p /dev/disk/by-id
for name in "$@"; do
	case "$name" in vd*) ;; *) continue ;; esac
	disk="${name%%[0-9]*}"
	part="${name#"$disk"}"
	if [ "$action" = remove ]; then
		for link in /dev/disk/by-id/*; do
			[ "$($BB readlink "$link")" = "../../$name" ] && $BB rm -f "$link"
		done
		continue
	fi
	serial="$(cat "/sys/class/block/$disk/serial" 2>/dev/null)"
	[ -n "$serial" ] || continue
	$BB ln -sfn "../../$name" "/dev/disk/by-id/virtio-$serial${part:+-part$part}"
done
exit 0
"""

# Run by busybox `uevent` for each kernel event (the kernel has no uevent helper).
UEVENT = r"""#!/bin/busybox sh
[ "$SUBSYSTEM" = block ] || exit 0
case "$DEVNAME" in vd*) exec /usr/lib/nubes/disk-links "$ACTION" "$DEVNAME" ;; esac
exit 0
"""

# /sbin/shutdown for images whose init is busybox init (Debian's is systemd's or sysvinit's).
SHUTDOWN_COMMAND = r"""#!/bin/busybox sh
# nubes: shutdown [-h|-P|-H|-r|-c] [TIME] [MESSAGE]: power off (default) or reboot now.
action=poweroff
for arg in "$@"; do
	case "$arg" in
		-r|--reboot) action=reboot ;;
		-h|-P|--poweroff) action=poweroff ;;
		-H|--halt) action=halt ;;
		-c) exit 0 ;;
	esac
done
exec /bin/busybox "$action"
"""

# The init agent. Reads http://100.100.100.200/latest/ (hardened mode first: a token from
# PUT /latest/api/token, sent back as X-aliyun-ecs-metadata-token; plain GETs if that fails).
NUBES_INIT = r"""#!/bin/busybox sh
# nubes-init: apply this instance's metadata at every boot, then print
#   NUBES-READY instance-id=<id>
# on the console (the host waits for it), then run the user data once per instance.
#
# From http://100.100.100.200/latest/: meta-data/instance-id, meta-data/hostname (set),
# meta-data/public-keys/ (-> root's authorized_keys), nubes/password-hash (root's password,
# a crypt(3) hash), user-data ("#!" script or "#cloud-config": runcmd, write_files,
# packages, ssh_authorized_keys; once per instance-id). Log: /var/log/nubes-init.log.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
BB=/bin/busybox
MD=100.100.100.200
STATE=/var/lib/nubes
RUN=/run/nubes
LOG=/var/log/nubes-init.log
TOKEN=
CR=$(printf '\r')
umask 022
$BB mkdir -p "$STATE" "$RUN" /var/log
$BB chmod 700 "$STATE"

read -r cmdline < /proc/cmdline
case " $cmdline " in *" nubes.trace "*) trace=1 ;; esac
log() {
	read -r up _ < /proc/uptime
	echo "$up $*" >> "$LOG"
	[ -n "$trace" ] && echo "[$up] nubes-init: $*" > /dev/console
}
say() { log "$*"; echo "nubes-init: $*" > /dev/console; }
uptime_s() { read -r up _ < /proc/uptime; echo "${up%%.*}"; }

# request METHOD PATH [HEADER]: sets $status (000: no answer); the body is in $RUN/body
request() {
	{
		printf '%s /latest/%s HTTP/1.0\r\nHost: %s\r\nUser-Agent: nubes-init\r\n' "$1" "$2" "$MD"
		[ -n "$3" ] && printf '%s\r\n' "$3"
		[ -n "$TOKEN" ] && printf 'X-aliyun-ecs-metadata-token: %s\r\n' "$TOKEN"
		printf '\r\n'
	} > "$RUN/request"
	$BB timeout 3 $BB nc "$MD" 80 < "$RUN/request" > "$RUN/response" 2>/dev/null
	status=000
	: > "$RUN/body"
	{
		IFS=' ' read -r _ code _ || return 0
		case "$code" in [1-5][0-9][0-9]) status=$code ;; esac
		while IFS= read -r line; do
			[ -z "$line" ] || [ "$line" = "$CR" ] && break
		done
		$BB cat > "$RUN/body"
	} < "$RUN/response"
}

# fetch PATH: true if the answer is 200; sets $status, the body is in $RUN/body
fetch() {
	request GET "$1"
	if [ "$status" = 401 ] || [ "$status" = 403 ]; then  # a stale or refused token: a new one, once
		new_token
		request GET "$1"
	fi
	[ "$status" = 200 ]
}
body() { $BB cat "$RUN/body"; }
first_line() {  # $line: the body's first line, without its CR; false if that is empty
	line=
	IFS= read -r line < "$RUN/body"
	line="${line%"$CR"}"
	[ -n "$line" ]
}

new_token() {
	TOKEN=
	request PUT api/token "X-aliyun-ecs-metadata-token-ttl-seconds: 21600"
	if [ "$status" = 200 ]; then
		read -r TOKEN < "$RUN/body"
		TOKEN="${TOKEN%"$CR"}"
	fi
}

# replace root's entries in /etc/shadow field 2 with $1 (keeps the file's owner and mode)
set_root_hash() {
	$BB awk -F: -v OFS=: -v h="$1" '$1 == "root" { $2 = h } { print }' /etc/shadow > "$RUN/shadow" &&
		$BB cat "$RUN/shadow" > /etc/shadow
	$BB rm -f "$RUN/shadow"
}

log "start"
# 1. the instance id; the network may need a moment
id=
deadline=$(( $(uptime_s) + 20 ))
while :; do
	new_token
	fetch meta-data/instance-id && first_line && id="${line//[!A-Za-z0-9_.-]/}" && [ -n "$id" ] && break
	if [ "$(uptime_s)" -ge "$deadline" ]; then
		id=
		break
	fi
	$BB sleep 0.3
done

reachable=1
if [ -z "$id" ]; then
	reachable=
	id=$($BB cat "$STATE/instance-id" 2>/dev/null)
	say "the metadata service did not answer; keeping the previous configuration"
fi
log "instance-id=$id token=${TOKEN:+yes}"

if [ -n "$reachable" ]; then
	# 2. a new instance (first boot, or an image made from another instance): new host keys
	if [ "$($BB cat "$STATE/instance-id" 2>/dev/null)" != "$id" ]; then
		$BB rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
		echo "$id" > "$STATE/instance-id"
	fi

	# 3. host name
	if fetch meta-data/hostname && first_line && name="${line//[!A-Za-z0-9.-]/}" && [ -n "$name" ]; then
		name="${name:0:63}"
		$BB hostname "$name"
		current=
		read -r current 2>/dev/null < /etc/hostname
		[ "$current" = "$name" ] || echo "$name" > /etc/hostname
		entry="$name"
		[ "${name%%.*}" = "$name" ] || entry="$name ${name%%.*}"
		listed=
		while read -r address names; do
			[ "$address" = 127.0.1.1 ] && [ "$names" = "$entry" ] && listed=1
		done < /etc/hosts
		if [ -z "$listed" ]; then
			$BB awk -v e="$entry" '
				$1 == "127.0.1.1" { next } { print }
				/^127\.0\.0\.1[ \t]/ && !done { printf "127.0.1.1\t%s\n", e; done = 1 }
			' /etc/hosts > "$RUN/hosts" && $BB cat "$RUN/hosts" > /etc/hosts
		fi
	fi

	# 4. SSH keys: the metadata's keys replace the ones nubes put there before; others stay
	keys=
	if fetch meta-data/public-keys/; then
		list=
		while read -r entry || [ -n "$entry" ]; do list="$list $entry"; done < "$RUN/body"
		: > "$RUN/keys"
		keys=0
		for entry in $list; do
			entry="${entry%%/*}"
			entry="${entry%%=*}"
			[ -n "$entry" ] && fetch "meta-data/public-keys/$entry/openssh-key" || continue
			while IFS= read -r line || [ -n "$line" ]; do
				line="${line%"$CR"}"
				[ -n "$line" ] && echo "$line" >> "$RUN/keys" && keys=$((keys + 1))
			done < "$RUN/body"
		done
	elif [ "$status" = 404 ]; then
		: > "$RUN/keys"  # no keys (any more)
		keys=0
	fi
	if [ -n "$keys" ] && ! $BB cmp -s "$RUN/keys" "$STATE/authorized_keys"; then
		[ -d /root/.ssh ] || { $BB mkdir -p /root/.ssh && $BB chmod 700 /root/.ssh; }
		(
			umask 077
			if [ -s "$STATE/authorized_keys" ] && [ -f /root/.ssh/authorized_keys ]; then
				$BB grep -vxF -f "$STATE/authorized_keys" /root/.ssh/authorized_keys > "$RUN/authorized_keys"
			elif [ -f /root/.ssh/authorized_keys ]; then
				$BB cat /root/.ssh/authorized_keys > "$RUN/authorized_keys"
			fi
			$BB cat "$RUN/keys" >> "$RUN/authorized_keys"
			$BB mv "$RUN/authorized_keys" /root/.ssh/authorized_keys
			$BB mv "$RUN/keys" "$STATE/authorized_keys"
		)
		log "ssh keys: $keys"
	fi

	# 5. root's password, as a crypt(3) hash
	if fetch nubes/password-hash && first_line; then
		hash="$line"
		if [ -n "${hash//[A-Za-z0-9.\/\$=,-]/}" ] || [ "${hash#\$}" = "$hash" ]; then
			say "ignoring nubes/password-hash: not a crypt(3) hash"
		elif [ "$($BB awk -F: '$1 == "root" { print $2 }' /etc/shadow)" != "$hash" ]; then
			set_root_hash "$hash"
			log "root password set"
		fi
	fi

	# 6. user data (kept for the run below)
	if fetch user-data && [ -s "$RUN/body" ]; then
		$BB cp "$RUN/body" "$STATE/user-data"
	else
		$BB rm -f "$STATE/user-data"
	fi
fi

# 7. sshd (images that have it), with host keys made on the first boot of an instance: the
# ed25519 and ECDSA keys now, the RSA key (6 s under emulation) behind, then sshd reloads
if [ -x /usr/sbin/sshd ]; then
	for type in ed25519 ecdsa; do
		[ -s "/etc/ssh/ssh_host_${type}_key" ] ||
			/usr/bin/ssh-keygen -q -t "$type" -N '' -C "root@$id" -f "/etc/ssh/ssh_host_${type}_key" >> "$LOG" 2>&1
	done
	$BB mkdir -p /run/sshd
	$BB chmod 755 /run/sshd
	/usr/sbin/sshd >> "$LOG" 2>&1 || say "sshd did not start"
	if [ ! -s /etc/ssh/ssh_host_rsa_key ]; then
		(
			tmp=/etc/ssh/.ssh_host_rsa_key.new
			$BB rm -f "$tmp" "$tmp.pub"
			/usr/bin/ssh-keygen -q -t rsa -N '' -C "root@$id" -f "$tmp" >> "$LOG" 2>&1 &&
				$BB mv "$tmp.pub" /etc/ssh/ssh_host_rsa_key.pub && $BB mv "$tmp" /etc/ssh/ssh_host_rsa_key &&
				[ -s /run/sshd.pid ] && $BB kill -HUP "$($BB cat /run/sshd.pid)" && log "ssh: RSA host key made"
		) </dev/null >/dev/null 2>&1 &
	fi
fi

# 8. tell the host
log "ready"
printf '\nNUBES-READY instance-id=%s\n' "$id" > /dev/console

# 9. user data: once per instance id, behind the ready line
[ -n "$reachable" ] && [ -s "$STATE/user-data" ] || exit 0
done_file="$STATE/user-data.done.$id"
[ -e "$done_file" ] && exit 0
(
	: > "$done_file"  # before running: a script that reboots must not run again
	script="$STATE/user-data.run"
	first=$($BB head -n 1 "$STATE/user-data" | $BB tr -d '\r')
	case "$first" in
		'#!'*) $BB cp "$STATE/user-data" "$script" ;;
		'#cloud-config'*) /usr/lib/nubes/cloud-config < "$STATE/user-data" > "$script" ;;
		*) say "user data is neither a #! script nor #cloud-config: not run"; exit 0 ;;
	esac
	$BB chmod 700 "$script"
	log "user data: start"
	(cd / && HOME=/root USER=root LOGNAME=root "$script") </dev/null >> /var/log/nubes-user-data.log 2>&1
	rc=$?
	log "user data: exit $rc"
	printf '\nNUBES-USERDATA instance-id=%s exit=%s\n' "$id" "$rc" > /dev/console
) &
exit 0
"""

# A #cloud-config subset, turned into a shell script: write_files (path, content with
# "|"/">"/quoted/plain scalars, encoding b64, permissions, owner, append), runcmd (strings or
# [argv] lists), packages (apt-get), ssh_authorized_keys, bootcmd (run here too), and
# final_message. Anything else is ignored (and listed in the log).
CLOUD_CONFIG = r"""#!/bin/busybox sh
# nubes: cloud-config < user-data > script: a #cloud-config subset as a shell script.
exec /bin/busybox awk '
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
function unquote(s) {
	s = trim(s)
	if (s ~ /^".*"$/) { s = substr(s, 2, length(s) - 2); gsub(/\\"/, "\"", s); gsub(/\\n/, "\n", s); gsub(/\\t/, "\t", s); gsub(/\\\\/, "\\", s); return s }
	if (s ~ /^'"'"'.*'"'"'$/) { s = substr(s, 2, length(s) - 2); gsub(/'"'"''"'"'/, "'"'"'", s); return s }
	return s
}
function shq(s) { gsub(/'"'"'/, "'"'"'\\'"'"''"'"'", s); return "'"'"'" s "'"'"'" }
function indent(s) { match(s, /^ */); return RLENGTH }
function flow_list(s,    inner, n, i, parts, out, item) {
	inner = substr(trim(s), 2); sub(/\][ \t]*$/, "", inner)
	n = split(inner, parts, ",")
	out = ""
	for (i = 1; i <= n; i++) { item = unquote(parts[i]); out = out (out == "" ? "" : " ") shq(item) }
	return out
}
function flush_file() {
	if (f_path == "") return
	d = f_path; sub(/\/[^\/]*$/, "", d)
	if (d != "") files = files "mkdir -p " shq(d) "\n"
	op = (f_append == "true") ? ">>" : ">"
	if (f_enc ~ /b64|base64/) files = files "printf %s " shq(f_content) " | /bin/busybox base64 -d " op " " shq(f_path) "\n"
	else files = files "printf %s " shq(f_content) " " op " " shq(f_path) "\n"
	if (f_perm != "") files = files "chmod " unquote(f_perm) " " shq(f_path) "\n"
	if (f_owner != "") files = files "chown " shq(unquote(f_owner)) " " shq(f_path) "\n"
	f_path = ""; f_content = ""; f_perm = ""; f_owner = ""; f_enc = ""; f_append = ""
}
function set_key(key, value) {
	if (key == "path") f_path = unquote(value)
	else if (key == "content") {
		v = trim(value)
		if (v ~ /^[|>][-+]?$/) { block = 1; block_fold = (v ~ /^>/); block_keep = (v ~ /\+$/); block_strip = (v ~ /-$/); block_indent = -1; f_content = ""; block_min = item_indent }
		else f_content = unquote(v) "\n"
	}
	else if (key == "permissions") f_perm = value
	else if (key == "owner") f_owner = value
	else if (key == "encoding") f_enc = unquote(value)
	else if (key == "append") f_append = unquote(value)
}
function end_block() {
	if (!block) return
	block = 0
	if (block_strip) sub(/\n+$/, "", f_content)
	else if (!block_keep) { sub(/\n+$/, "", f_content); f_content = f_content "\n" }
}
BEGIN { print "#!/bin/sh"; print "set -x"; section = ""; block = 0 }
NR == 1 && /^#cloud-config/ { next }
{
	line = $0; sub(/\r$/, "", line)
	if (block) {
		if (line ~ /^[ \t]*$/) { f_content = f_content "\n"; next }
		ind = indent(line)
		if (ind > block_min) {
			if (block_indent < 0) block_indent = ind
			text = substr(line, block_indent + 1)
			f_content = f_content text (block_fold ? " " : "\n")
			next
		}
		end_block()
	}
	if (line ~ /^[ \t]*#/ || line ~ /^[ \t]*$/) next
	if (line ~ /^[A-Za-z_]+:/) {
		if (section == "write_files") flush_file()
		section = line; sub(/:.*/, "", section)
		value = line; sub(/^[A-Za-z_]+:[ \t]*/, "", value)
		if (section == "final_message" && value != "") final = unquote(value)
		if (section !~ /^(write_files|runcmd|bootcmd|packages|ssh_authorized_keys|final_message|package_update|package_upgrade)$/) print "# ignored: " section
		next
	}
	ind = indent(line); text = trim(line)
	if (section == "runcmd" || section == "bootcmd") {
		if (text ~ /^- /) {
			item = trim(substr(text, 3))
			cmd = (item ~ /^\[/) ? flow_list(item) : unquote(item)
			if (section == "bootcmd") bootcmds = bootcmds cmd "\n"
			else runcmds = runcmds cmd "\n"
		}
	} else if (section == "packages") {
		if (text ~ /^- /) packages = packages " " shq(unquote(substr(text, 3)))
	} else if (section == "ssh_authorized_keys") {
		if (text ~ /^- /) keys[++nkeys] = unquote(substr(text, 3))
	} else if (section == "write_files") {
		if (text ~ /^- /) { flush_file(); item_indent = ind; text = trim(substr(text, 3)); if (text == "") next }
		if (match(text, /^[A-Za-z_]+:/)) { key = substr(text, 1, RLENGTH - 1); set_key(key, substr(text, RLENGTH + 1)) }
	}
}
END {
	end_block()
	if (section == "write_files") flush_file()
	printf "%s%s", bootcmds, files
	if (nkeys) {
		print "mkdir -p /root/.ssh && chmod 700 /root/.ssh"
		for (i = 1; i <= nkeys; i++) print "printf \"%s\\n\" " shq(keys[i]) " >> /root/.ssh/authorized_keys"
		print "chmod 600 /root/.ssh/authorized_keys"
	}
	if (packages != "") print "DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q" packages
	printf "%s", runcmds
	if (final != "") print "echo " shq(final)
}
'
"""

MDEV_CONF = ""  # (unused: busybox uevent + disk-links make the by-id links)

NUBES_FILES: dict[str, tuple[str, int]] = {
    # path in the root file system -> (contents, mode)
    "usr/lib/nubes/rc.sysinit": (RC_SYSINIT, 0o755),
    "usr/lib/nubes/rc.shutdown": (RC_SHUTDOWN, 0o755),
    "usr/lib/nubes/nubes-init": (NUBES_INIT, 0o755),
    "usr/lib/nubes/cloud-config": (CLOUD_CONFIG, 0o755),
    "usr/lib/nubes/udhcpc.script": (UDHCPC_SCRIPT, 0o755),
    "usr/lib/nubes/disk-links": (DISK_LINKS, 0o755),
    "usr/lib/nubes/uevent": (UEVENT, 0o755),
    "etc/acpi/PWRF/00000080": (ACPI_POWER_BUTTON, 0o755),
    "etc/inittab": (INITTAB, 0o644),
}


def fingerprint() -> str:
    """A hash of everything in this module that ends up in an image."""
    h = hashlib.sha256()
    for part in (INITRAMFS_INIT, *INITRAMFS_MODULES, SHUTDOWN_COMMAND):
        h.update(part.encode() + b"\0")
    for path, (text, mode) in sorted(NUBES_FILES.items()):
        h.update(f"{path}:{mode:o}:{text}\0".encode())
    return h.hexdigest()
