"""The OPC UA server's address space for the park and the live values in it."""

from server.opcua.builder import build_fast
from server.opcua.naive import build_naive
from server.opcua.namespace import NAMESPACE_URI, ParkTree
from server.opcua.park import build_park
from server.opcua.types import ParkTypes, install_types
from server.opcua.updates import OpcUaValues, UpdateStats, ValueIndex

__all__ = [
    "NAMESPACE_URI",
    "OpcUaValues",
    "ParkTree",
    "ParkTypes",
    "UpdateStats",
    "ValueIndex",
    "build_fast",
    "build_naive",
    "build_park",
    "install_types",
]
