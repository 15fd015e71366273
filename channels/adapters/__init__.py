"""Sales-channel adapters: one per platform, behind the small interface of `base.py`.

ADAPTERS maps a channel kind (channels.models.ChannelKind) to its adapter class:
`ADAPTERS[channel.kind](channel, transport=...)`.
"""

from .base import ChannelAdapter
from .douyin import DouyinAdapter
from .generic import GenericAdapter
from .jd import JDAdapter
from .pdd import PinduoduoAdapter
from .shopify import ShopifyAdapter
from .taobao import SandboxAdapter, TaobaoAdapter

ADAPTERS: dict[str, type[ChannelAdapter]] = {
    "taobao": TaobaoAdapter,
    "jd": JDAdapter,
    "douyin": DouyinAdapter,
    "pdd": PinduoduoAdapter,
    "shopify": ShopifyAdapter,
    "generic": GenericAdapter,
    "sandbox": SandboxAdapter,  # the sandbox marketplace speaks TOP's wire format for now
}

__all__ = ["ADAPTERS", "DouyinAdapter", "GenericAdapter", "JDAdapter", "PinduoduoAdapter",
           "SandboxAdapter", "ShopifyAdapter", "TaobaoAdapter"]
