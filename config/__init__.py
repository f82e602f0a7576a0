"""parkgrid config: the site model, its loader and strict validation."""

from config.errors import ConfigError, SiteInvalid
from config.loader import load_site
from config.model import (
    Acquisition,
    AlarmLimits,
    AlarmOverride,
    Alarms,
    Alipay,
    Area,
    Building,
    Gateway,
    Merchant,
    Meter,
    Park,
    Route,
    Services,
    Site,
    User,
    WechatPay,
)
from config.tariffs import Period, Season, Tariff, TariffVersion, TierStep, TouPrices
from config.values import Endpoint

__all__ = [
    "Acquisition",
    "AlarmLimits",
    "AlarmOverride",
    "Alarms",
    "Alipay",
    "Area",
    "Building",
    "ConfigError",
    "Endpoint",
    "Gateway",
    "Merchant",
    "Meter",
    "Park",
    "Period",
    "Route",
    "Season",
    "Services",
    "Site",
    "SiteInvalid",
    "Tariff",
    "TariffVersion",
    "TierStep",
    "TouPrices",
    "User",
    "WechatPay",
    "load_site",
]
