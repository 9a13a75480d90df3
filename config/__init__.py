"""Settings and per-province data: configuration over code, as FixMyStreet does per council."""

from config.province import ConfigError, Province, load_province
from config.settings import Settings, load_settings

__all__ = ["ConfigError", "Province", "Settings", "load_province", "load_settings"]
