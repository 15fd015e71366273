"""Carrier tracking: the adapter contract, Kuaidi100, an in-process sandbox, route anomalies."""

from .base import (
    CarrierAdapter,
    CarrierError,
    TrackingCheckpoint,
    TrackingSignatureError,
    TrackingState,
    TrackingUpdate,
)

__all__ = [
    "CarrierAdapter",
    "CarrierError",
    "TrackingCheckpoint",
    "TrackingSignatureError",
    "TrackingState",
    "TrackingUpdate",
]
