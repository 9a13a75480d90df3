"""Process settings: ``PAKN_*`` environment variables over an optional TOML file over defaults.

The TOML file (``PAKN_CONFIG``) uses the same names without the prefix, in lower case, e.g.::

    database_url = "postgresql+asyncpg://pakn@db/pakn"
    province_dir = "/etc/pakn/province"
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from config.province import ConfigError

BUNDLED_PROVINCE_DIR = Path(__file__).parent / "data" / "dien_bien"

_MODES = ("polling", "webhook")
_BOT_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{4,31}")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("pakn-data")
    database_url: str = ""
    # PostgreSQL connections each process keeps open, and at most uses (a transaction beyond them waits for one).
    database_pool_size: int = 20
    secret_key: str = ""
    public_url: str = "http://127.0.0.1:8080"
    host: str = "127.0.0.1"
    port: int = 8080
    province_dir: Path = BUNDLED_PROVINCE_DIR
    telegram_token: str = ""
    telegram_api_url: str = "https://api.telegram.org"
    telegram_mode: str = "polling"
    telegram_webhook_secret: str = ""
    telegram_max_rate: float = 30.0
    # The bot's @username (without "@"): desk posters and landing pages link to t.me/<username>?start=…
    telegram_bot_username: str = ""
    # The Zalo Official Account's link (https://zalo.me/…), offered on desk landing pages when set.
    zalo_url: str = ""
    # Reverse proxies (comma-separated IP addresses) whose X-Forwarded-For is believed for rate limits.
    trusted_proxies: str = ""
    config_file: Path | None = field(default=None)

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under ``data_dir``."""
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'pakn.db').resolve()}"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "secret.key"


def normalise_database_url(url: str) -> str:
    """Accept the plain driver names operators write and pick the async driver for them."""
    for plain, asynchronous in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return asynchronous + url[len(plain) :]
    return url


def _coerce(name: str, value: object, source: str) -> object:
    if name in ("data_dir", "province_dir"):
        return Path(str(value))
    if name == "telegram_max_rate":
        try:
            rate = float(str(value))
        except ValueError:
            raise ConfigError(source, name, f"not a number: {value!r}") from None
        if rate < 0:
            raise ConfigError(source, name, "must be 0 (no limit) or more")
        return rate
    if name == "database_pool_size":
        try:
            size = int(str(value))
        except ValueError:
            raise ConfigError(source, name, f"not a whole number: {value!r}") from None
        if not 1 <= size <= 1000:
            raise ConfigError(source, name, f"must be from 1 to 1000, got {size}")
        return size
    if name == "port":
        try:
            port = int(str(value))
        except ValueError:
            raise ConfigError(source, name, f"not a port number: {value!r}") from None
        if not 0 < port < 65536:
            raise ConfigError(source, name, f"port out of range: {port}")
        return port
    if not isinstance(value, str):
        raise ConfigError(source, name, f"expected a string, got {type(value).__name__}")
    if name == "telegram_mode" and value not in _MODES:
        raise ConfigError(source, name, f"must be one of {', '.join(_MODES)}, got {value!r}")
    if name == "telegram_bot_username":
        value = value.removeprefix("@")
        if value and not _BOT_USERNAME.fullmatch(value):
            raise ConfigError(source, name, f"not a Telegram bot username (5–32 letters, digits or _): {value!r}")
    if name == "zalo_url" and value and not value.startswith("https://"):
        raise ConfigError(source, name, f"must be an https:// link, got {value!r}")
    if name == "trusted_proxies":
        for address in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ConfigError(source, name, f"not an IP address: {address!r}") from None
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings; raise ConfigError naming the file or variable and the key that is wrong."""
    env = os.environ if environ is None else environ
    names = {f.name for f in fields(Settings)} - {"config_file"}
    values: dict[str, object] = {}
    config_file = env.get("PAKN_CONFIG")
    if config_file:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(str(path), "PAKN_CONFIG", "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), "-", f"not valid TOML: {exc}") from None
        for key, value in data.items():
            if key not in names:
                raise ConfigError(str(path), key, "unknown setting")
            values[key] = _coerce(key, value, str(path))
        if "province_dir" in values:
            province_dir = Path(str(values["province_dir"]))
            if not province_dir.is_absolute():
                values["province_dir"] = (path.parent / province_dir).resolve()
        values["config_file"] = path
    for name in names:
        raw = env.get(f"PAKN_{name.upper()}")
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw, "environment")
    return Settings(**values)  # type: ignore[arg-type]
