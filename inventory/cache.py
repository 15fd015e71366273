"""Availability cache for the read paths (availability API, channel stock sync).

One Redis hash per SKU, a field per warehouse holding "version:on_hand:reserved:safety".
Services write through after commit; a Lua script keeps a field only if its version is newer,
so two commits finishing out of order cannot leave an older value behind. PostgreSQL stays the
truth: a missing hash is a miss that reads the database and fills the cache, and with Redis
down every read falls back to the database and every write is skipped.
"""

import logging

import redis
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

KEY = "avail:{sku_id}"
TTL_SECONDS = 24 * 3600

# KEYS[1] hash; ARGV: field, version, value, ttl. Writes only when newer than what is there.
_SET_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local v = tonumber(string.match(current, '^(%d+):'))
  if v and v >= tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


_clients: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis | None:
    """A Redis client for REDIS_URL (one per URL and process: building one is costly), or
    None when the cache is not Redis."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    return client


def _key(sku_id: int) -> str:
    return cache.make_and_validate_key(KEY.format(sku_id=sku_id))


def encode(version: int, on_hand: int, reserved: int, safety: int) -> str:
    return f"{version}:{on_hand}:{reserved}:{safety}"


def decode(value) -> dict:
    if isinstance(value, bytes):
        value = value.decode()
    version, on_hand, reserved, safety = (int(part) for part in value.split(":"))
    return {"version": version, "on_hand": on_hand, "reserved": reserved, "safety_stock": safety}


def publish_level(state) -> None:
    """Write one warehouse's numbers for one SKU, if newer than the cached ones."""
    value = encode(state.version, state.on_hand, state.reserved, state.safety_stock)
    try:
        client = _redis()
        if client is None:
            levels = cache.get(KEY.format(sku_id=state.sku_id)) or {}
            levels[str(state.warehouse_id)] = value
            cache.set(KEY.format(sku_id=state.sku_id), levels, TTL_SECONDS)
            return
        client.eval(_SET_IF_NEWER, 1, _key(state.sku_id), str(state.warehouse_id),
                    state.version, value, TTL_SECONDS)
    except Exception:  # noqa: BLE001 - the cache is an optimisation; the database is the truth
        logger.warning("availability cache write skipped for sku %s", state.sku_id, exc_info=True)


HITS, MISSES = "avail:stats:hits", "avail:stats:misses"


def count(hit: bool) -> None:
    try:
        client = _redis()
        name = HITS if hit else MISSES
        if client is None:
            cache.get_or_set(name, 0)
            cache.incr(name)
        else:
            client.incr(cache.make_and_validate_key(name))
    except Exception:  # noqa: BLE001
        logger.debug("cache statistics skipped", exc_info=True)


def take_counts() -> tuple[int, int]:
    """Hits and misses since the last call (read and reset)."""
    try:
        client = _redis()
        if client is None:
            hits, misses = cache.get(HITS, 0), cache.get(MISSES, 0)
            cache.set_many({HITS: 0, MISSES: 0})
            return hits, misses
        with client.pipeline() as pipe:
            pipe.getset(cache.make_and_validate_key(HITS), 0)
            pipe.getset(cache.make_and_validate_key(MISSES), 0)
            hits, misses = pipe.execute()
        return int(hits or 0), int(misses or 0)
    except Exception:  # noqa: BLE001
        return 0, 0


def answering() -> bool:
    try:
        client = _redis()
        if client is not None:
            client.ping()
        return True
    except Exception:  # noqa: BLE001
        return False


def read_levels(sku_id: int) -> dict[int, dict] | None:
    """{warehouse_id: numbers} from the cache, or None on a miss or when Redis is down."""
    try:
        client = _redis()
        if client is None:
            raw = cache.get(KEY.format(sku_id=sku_id))
        else:
            raw = client.hgetall(_key(sku_id))
    except Exception:  # noqa: BLE001
        logger.warning("availability cache read failed for sku %s", sku_id, exc_info=True)
        return None
    if not raw:
        return None
    return {int(k.decode() if isinstance(k, bytes) else k): decode(v) for k, v in raw.items()}


def replace_levels(sku_id: int, levels: dict[int, dict]) -> bool:
    """Overwrite the SKU's hash with database values (fill after a miss, or a repair)."""
    mapping = {
        str(wid): encode(n["version"], n["on_hand"], n["reserved"], n["safety_stock"])
        for wid, n in levels.items()
    }
    try:
        client = _redis()
        if client is None:
            cache.set(KEY.format(sku_id=sku_id), mapping, TTL_SECONDS)
            return True
        key = _key(sku_id)
        with client.pipeline() as pipe:
            pipe.delete(key)
            if mapping:
                pipe.hset(key, mapping=mapping)
                pipe.expire(key, TTL_SECONDS)
            pipe.execute()
        return True
    except Exception:  # noqa: BLE001
        logger.warning("availability cache fill skipped for sku %s", sku_id, exc_info=True)
        return False


def forget(sku_id: int) -> None:
    try:
        client = _redis()
        if client is None:
            cache.delete(KEY.format(sku_id=sku_id))
        else:
            client.delete(_key(sku_id))
    except Exception:  # noqa: BLE001
        logger.warning("availability cache delete skipped for sku %s", sku_id, exc_info=True)
