"""Route anomalies read from one tracking update: pure, so the alert scan and tests share it.

Codes and the rule behind each:

* ``no_update``: the parcel is still on its way to the customer (collected, in transit,
  delivering or problem) and its newest checkpoint is older than ``stale_after``; with no
  checkpoint at all, measured from ``outbound_at`` when given (Kuaidi100's "3天查询无记录").
  Returns and signed parcels are left out: they have their own flow and nobody is waiting.
* ``off_route``: the parcel has been scanned in the receiver's province and its newest
  located checkpoint is now in another one, with no return or rejection on the way.
  Trunk lines legitimately cross third provinces between origin and destination, so "a
  province that is neither" would flag normal transit; once the parcel has reached the
  receiver's province, leaving it again is a mis-sort (错分). Waiting for a "delivering"
  checkpoint would miss mis-sorts at the destination hub, which are the common case. Only the
  present position counts, because a mis-sort already corrected needs nobody's action.
* ``repeated_returns``: more than one return episode, an episode being a run of consecutive
  returned/rejected checkpoints in time order; one refusal produces several such checkpoints
  (拒收 → 退回 → 退签), so counting checkpoints would flag every ordinary return.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .base import TrackingState, TrackingUpdate

NO_UPDATE = "no_update"
OFF_ROUTE = "off_route"
REPEATED_RETURNS = "repeated_returns"

_ON_THE_WAY = {TrackingState.COLLECTED, TrackingState.IN_TRANSIT, TrackingState.DELIVERING,
               TrackingState.PROBLEM}
_RETURNING = {TrackingState.RETURNED, TrackingState.REJECTED}
_SUFFIXES = ("特别行政区", "维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "省", "市")


def normalize_province(name: str) -> str:
    """'广东省' and '广东', '上海市' and '上海' name the same province in carrier data."""
    name = name.strip()
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def detect_anomalies(update: TrackingUpdate, *, receiver_province: str, now: datetime,
                     stale_after: timedelta = timedelta(hours=48),
                     outbound_at: datetime | None = None) -> list[str]:
    found = []
    if _stale(update, now, stale_after, outbound_at):
        found.append(NO_UPDATE)
    if _off_route(update, normalize_province(receiver_province)):
        found.append(OFF_ROUTE)
    if return_episodes(update) > 1:
        found.append(REPEATED_RETURNS)
    return found


def _stale(update: TrackingUpdate, now: datetime, stale_after: timedelta,
           outbound_at: datetime | None) -> bool:
    if update.state not in _ON_THE_WAY:
        return False
    last_seen = update.latest.at if update.latest else outbound_at
    return last_seen is not None and now - last_seen > stale_after


def _off_route(update: TrackingUpdate, receiver: str) -> bool:
    if not receiver:
        return False
    reached = False
    current = ""
    for checkpoint in reversed(update.checkpoints):  # oldest first
        if checkpoint.state in _RETURNING:
            return False
        province = normalize_province(checkpoint.province)
        if not province:
            continue
        reached = reached or province == receiver
        current = province
    return reached and current != receiver


def return_episodes(update: TrackingUpdate) -> int:
    """Runs of consecutive returned/rejected checkpoints, in time order."""
    episodes, inside = 0, False
    for checkpoint in reversed(update.checkpoints):
        returning = checkpoint.state in _RETURNING
        episodes += returning and not inside
        inside = returning
    return episodes
