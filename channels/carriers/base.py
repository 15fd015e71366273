"""The carrier tracking contract: what any tracking source (Kuaidi100, the sandbox) hands back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class TrackingState(StrEnum):
    COLLECTED = "collected"
    IN_TRANSIT = "in_transit"
    DELIVERING = "delivering"
    SIGNED = "signed"
    PROBLEM = "problem"
    RETURNED = "returned"
    REJECTED = "rejected"


@dataclass(frozen=True)
class TrackingCheckpoint:
    at: datetime  # aware; carriers report Asia/Shanghai wall-clock time
    state: TrackingState
    location: str
    description: str
    area_code: str = ""
    province: str = ""


@dataclass(frozen=True)
class TrackingUpdate:
    carrier: str
    tracking_no: str
    state: TrackingState
    checkpoints: tuple[TrackingCheckpoint, ...]  # newest first, as Kuaidi100 sends them
    # The carrier's payload as received, kept for the archive; a dict cannot be hashed or
    # meaningfully compared, so it stays out of both.
    raw: dict = field(compare=False, hash=False, repr=False)
    signed_at: datetime | None

    @property
    def latest(self) -> TrackingCheckpoint | None:
        return self.checkpoints[0] if self.checkpoints else None


class CarrierError(Exception):
    """The carrier API could not answer. retryable=False means retrying the same call is
    pointless (bad key, unsupported carrier, missing phone) until someone fixes the input."""

    def __init__(self, message: str, *, code: str = "", retryable: bool = True):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class TrackingSignatureError(Exception):
    """A pushed tracking update is unsigned or its signature does not match: not from the carrier."""


class CarrierAdapter(Protocol):
    code: str

    def subscribe(self, carrier: str, tracking_no: str, *, callback_url: str,
                  phone: str = "") -> None: ...

    def poll(self, carrier: str, tracking_no: str, *, phone: str = "") -> TrackingUpdate: ...

    def parse_push(self, body: Mapping[str, str]) -> TrackingUpdate: ...
