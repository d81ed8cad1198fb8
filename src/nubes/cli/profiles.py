"""Where the CLI finds its endpoint and credentials: flags, environment, profile, local server."""

from __future__ import annotations

import configparser
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from nubes.client import Credentials
from nubes.config import default_data_dir

DEFAULT_ENDPOINT = "127.0.0.1:8765"
DEFAULT_REGION = "cn-hangzhou"


@dataclass
class Profile:
    name: str = "default"
    endpoint: str = DEFAULT_ENDPOINT
    region_id: str = DEFAULT_REGION
    access_key_id: str = ""
    access_key_secret: str = ""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nubes" / "config.json"


def load_profiles() -> dict[str, Profile]:
    path = config_path()
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {p["name"]: Profile(**p) for p in data.get("profiles", [])}


def save_profile(profile: Profile) -> Path:
    profiles = load_profiles()
    profiles[profile.name] = profile
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"profiles": [asdict(p) for p in profiles.values()]}, f, indent=2)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that existed before
    return path


def local_server_key() -> tuple[str, str] | None:
    """The root key a local server wrote on its first start, if this user can read it."""
    path = default_data_dir() / "credentials"
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
        section = parser["default"]
        return section["access_key_id"], section["access_key_secret"]
    except (KeyError, configparser.Error, OSError):
        return None


def resolve(endpoint: str | None, region: str | None, profile_name: str | None) -> Credentials:
    env = os.environ
    profile = load_profiles().get(profile_name or env.get("NUBES_PROFILE") or "default") or Profile()
    key_id = env.get("NUBES_ACCESS_KEY_ID") or profile.access_key_id
    secret = env.get("NUBES_ACCESS_KEY_SECRET") or profile.access_key_secret
    if not key_id or not secret:
        local = local_server_key()
        if local:
            key_id, secret = local
    return Credentials(
        endpoint=endpoint or env.get("NUBES_ENDPOINT") or profile.endpoint,
        region_id=region or env.get("NUBES_REGION") or profile.region_id,
        access_key_id=key_id,
        access_key_secret=secret,
    )
