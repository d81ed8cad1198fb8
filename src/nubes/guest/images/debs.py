"""Fetching Debian packages with the host's apt (`apt-get download`), into a cache."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from nubes.guest.images.proc import ImageBuildError, require_tool, run

APT_HINT = "(is the package known to apt? try `apt-get update`)"


def _fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first stanza only
        m = re.match(r"^([A-Za-z0-9-]+):\s*(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def package_fields(package: str) -> dict[str, str]:
    """The candidate version's control fields, from `apt-cache show`."""
    require_tool("apt-cache", "apt")
    text = run(["apt-cache", "show", "--no-all-versions", package], what=f"looking up {package} {APT_HINT}")
    fields = _fields(text)
    if "Version" not in fields:
        raise ImageBuildError(f"apt knows no version of {package} {APT_HINT}")
    return fields


def deb_filename(package: str, version: str, arch: str) -> str:
    return f"{package}_{version.replace(':', '%3a')}_{arch}.deb"


def _cached(package: str, cache: Path) -> Path | None:
    found = sorted(cache.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def download(package: str, cache: Path) -> Path:
    """The .deb of `package`'s candidate version, downloaded once into `cache`.

    When apt cannot say or fetch the candidate (no network, no lists), the newest cached
    .deb of the package is used instead, so a rebuild works offline."""
    cache.mkdir(parents=True, exist_ok=True)
    try:
        fields = package_fields(package)
    except ImageBuildError:
        cached = _cached(package, cache)
        if cached is not None:
            return cached
        raise
    name = deb_filename(package, fields["Version"], fields.get("Architecture", "amd64"))
    target = cache / name
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        try:
            _apt_download(package, fields["Version"], Path(tmp))
        except ImageBuildError:
            cached = _cached(package, cache)
            if cached is not None:
                return cached
            # apt's lists may be older than the mirror (a point release removes old kernels)
            run(["apt-get", "update", "-q"], what="apt-get update", timeout=900)
            fields = package_fields(package)
            name = deb_filename(package, fields["Version"], fields.get("Architecture", "amd64"))
            target = cache / name
            _apt_download(package, fields["Version"], Path(tmp))
        debs = list(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            raise ImageBuildError(f"apt-get download {package} left {len(debs)} files, expected one .deb")
        shutil.move(str(debs[0]), target)
    for old in cache.glob(f"{package}_*.deb"):  # older versions of the package
        if old != target:
            old.unlink(missing_ok=True)
    return target


def _apt_download(package: str, version: str, directory: Path) -> None:
    run(
        ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", f"{package}={version}"],
        what=f"downloading {package} {APT_HINT}",
        cwd=directory,
        timeout=900,
    )


def resolve_dependency(metapackage: str, prefix: str, cache: Path) -> str:
    """The package a metapackage depends on whose name starts with `prefix`
    (linux-image-amd64 -> linux-image-6.1.0-56-amd64)."""
    try:
        depends = package_fields(metapackage).get("Depends", "")
    except ImageBuildError:
        depends = ""
    for alternative in re.split(r"[,|]", depends):
        name = alternative.strip().split(" ", 1)[0]
        if name.startswith(prefix):
            return name
    # apt cannot tell (offline, no lists): the newest cached one
    cached = sorted(
        (p for p in cache.glob(f"{prefix}*.deb") if not p.name.startswith(metapackage + "_")),
        key=lambda p: p.stat().st_mtime,
    )
    if cached:
        return cached[-1].name.split("_", 1)[0]
    raise ImageBuildError(f"cannot tell which {prefix}* package {metapackage} stands for {APT_HINT}")


def extract(deb: Path, target: Path) -> None:
    """Unpack a .deb's files (not its scripts) into `target`, like `dpkg-deb -x`."""
    require_tool("dpkg-deb", "dpkg")
    target.mkdir(parents=True, exist_ok=True)
    run(["dpkg-deb", "-x", deb, target], what=f"unpacking {deb.name}")


def deb_version(deb: Path) -> str:
    """The Version field of a .deb file."""
    return run(["dpkg-deb", "-f", deb, "Version"], what=f"reading {deb.name}").strip()
