"""Sales-channel adapters: one per platform, behind the small interface of `base.py`."""

from .generic import GenericAdapter

ADAPTERS = {"generic": GenericAdapter}
