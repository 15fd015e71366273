"""Availability cache for the read paths (availability API, channel stock sync).

One Redis hash per SKU, a field per warehouse holding "version:on_hand:reserved:safety" and a
`complete` marker field. PostgreSQL stays the truth; with Redis down every read falls back to
the database and every write is skipped.

* Complete or a miss. Only a fill from the database (every warehouse of the SKU, read in one
  query) writes the marker. A read of a hash without it is a miss that reads the database and
  fills; a write-through into a hash without it (expired, lost) adds its own warehouse, which
  does not make the hash complete, and then fills it from the database.
* The newest version wins. Services write through after commit, keeping a field only if its
  version is newer than the cached one; fills and repairs keep a cached field that is newer than
  what they read from the database. Two commits finishing out of order, or a fill or repair
  racing a commit, cannot leave an older value behind.
* Whose numbers. Keys are namespaced by the database's generation (`CacheGeneration`: new with
  every new database, rotated by `manage.py rotate_cache_generation` after a restore) and by the
  run id of the Redis server (new at every start, so a server back from an old snapshot begins
  empty). Each connection reads the run id once, when it connects, and a key is built from the
  run id of the connection that carries it: a command can never reach another server run's
  namespace, and a read stays one round trip.
"""

import logging
import re

import redis
from django.conf import settings
from django.core.cache import cache

from .models import CacheGeneration

logger = logging.getLogger(__name__)

TTL_SECONDS = 24 * 3600
COMPLETE = "complete"  # the marker field (warehouse fields are numeric ids)
READS, MISSES = "avail:stats:reads", "avail:stats:misses"

# KEYS[1] the SKU's hash; ARGV: field, version, value, ttl, marker. Writes the field only when
# newer than the cached one; returns 1 when the hash is complete.
_PUBLISH = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
local newer = true
if current then
  local v = tonumber(string.match(current, '^(%d+):'))
  newer = not (v and v >= tonumber(ARGV[2]))
end
if newer then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return redis.call('HEXISTS', KEYS[1], ARGV[5])
"""

# KEYS[1] the SKU's hash; ARGV[1] ttl, ARGV[2] marker, then per warehouse: field, version, value
# ('' removes the field), seen (the cached value the caller read and found wrong, or '').
# The database's value goes in unless the cached one is newer and not the one found wrong; then
# the hash is complete. Returns how many fields changed.
_FILL = """
local changed = 0
for i = 3, #ARGV, 4 do
  local field, version, value, seen = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local current = redis.call('HGET', KEYS[1], field)
  local write = (not current) or current == seen
  if not write then
    local v = tonumber(string.match(current, '^(%d+):'))
    write = (not v) or v <= version
  end
  if write then
    if value == '' then
      if current then
        redis.call('HDEL', KEYS[1], field)
        changed = changed + 1
      end
    elseif current ~= value then
      redis.call('HSET', KEYS[1], field, value)
      changed = changed + 1
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[2], '1')
redis.call('EXPIRE', KEYS[1], ARGV[1])
return changed
"""
_REMOVE = -1  # the version of a removal: it applies only to the value the caller saw

_clients: dict[str, redis.Redis] = {}
_RUN_ID = re.compile(rb"^run_id:(\w+)", re.MULTILINE)


def _on_connect(connection) -> None:
    """Each new connection learns which run of the Redis server it talks to."""
    connection.on_connect()
    try:
        connection.send_command("INFO", "server")
        info = connection.read_response()
    except redis.ResponseError:  # INFO renamed away: restarts cannot be told apart
        logger.warning("Redis refuses INFO: the availability cache cannot detect a Redis restart")
        info = b""
    match = _RUN_ID.search(info if isinstance(info, bytes) else str(info).encode())
    connection.availability_run = match.group(1).decode()[:12] if match else ""


def _redis() -> redis.Redis | None:
    """A Redis client for REDIS_URL (one per URL and process: building one is costly), or
    None when the cache is not Redis."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(
            url, socket_connect_timeout=1, socket_timeout=1, redis_connect_func=_on_connect)
    return client


def _roundtrip(client: redis.Redis, build) -> list:
    """Send the commands `build(run)` returns, `run` being the server run id of the connection
    that carries them, in one round trip; their replies. A connection found dead (a Redis
    restart) is replaced once, and the commands are built again for the new one."""
    pool = client.connection_pool
    retried = False
    while True:
        connection = pool.get_connection()
        try:
            commands = build(getattr(connection, "availability_run", ""))
            connection.send_packed_command(connection.pack_commands(commands))
            return [connection.read_response() for _ in commands]
        except redis.ConnectionError:
            connection.disconnect()
            if retried:
                raise
            retried = True
        except BaseException:
            connection.disconnect()  # replies may be left unread
            raise
        finally:
            pool.release(connection)


# --- the database generation ------------------------------------------------------------------

_generation: str | None = None


def known_generation() -> str:
    """The database's cache generation as this process last saw it (read once, then kept
    current by note_generation: every read checks it against the database)."""
    global _generation
    if _generation is None:
        _generation = CacheGeneration.current()
    return _generation


def note_generation(token: str | None) -> None:
    """The generation the database just returned (None: read it again when next needed)."""
    global _generation
    _generation = token


def _key(generation: str, run: str, sku_id: int) -> str:
    return cache.make_and_validate_key(f"avail:{generation[:16]}.{run}:{sku_id}")


def _local_key(generation: str, sku_id: int) -> str:
    return f"avail:{generation[:16]}:{sku_id}"


# --- values -------------------------------------------------------------------------------------


def encode(version: int, on_hand: int, reserved: int, safety: int) -> str:
    return f"{version}:{on_hand}:{reserved}:{safety}"


def decode(value) -> dict:
    if isinstance(value, bytes):
        value = value.decode()
    version, on_hand, reserved, safety = (int(part) for part in value.split(":"))
    return {"version": version, "on_hand": on_hand, "reserved": reserved, "safety_stock": safety}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(reply) -> dict[str, str]:
    """An HGETALL reply (a dict, or a flat list under RESP2 parsers) as {field: value}."""
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    return {_text(reply[i]): _text(reply[i + 1]) for i in range(0, len(reply or ()), 2)}


def complete_levels(fields: dict[str, str] | None) -> dict[int, dict] | None:
    """{warehouse_id: numbers} of a complete hash; None for a missing or incomplete one."""
    if not fields or COMPLETE not in fields:
        return None
    return {int(field): decode(value) for field, value in fields.items() if field != COMPLETE}


# --- reads ----------------------------------------------------------------------------------------


def read_levels(sku_id: int, *, generation: str | None = None, count: bool = False) -> dict[int, dict] | None:
    """{warehouse_id: numbers} from the cache; None on a miss (no hash, or one that is not
    complete) or when Redis is down. `count`: count it as a read for the hit rate (in the same
    round trip)."""
    generation = generation or known_generation()
    try:
        client = _redis()
        if client is None:
            if count:
                _local_incr(READS)
            return complete_levels(cache.get(_local_key(generation, sku_id)))
        stats = [("INCR", cache.make_and_validate_key(READS))] if count else []
        reply = _roundtrip(client, lambda run: [("HGETALL", _key(generation, run, sku_id)), *stats])[0]
    except Exception:  # noqa: BLE001 - the cache is an optimisation; the database is the truth
        logger.warning("availability cache read failed for sku %s", sku_id, exc_info=True)
        return None
    return complete_levels(_fields(reply))


def read_hashes(sku_ids: list[int], *, generation: str | None = None) -> dict[int, dict[str, str]]:
    """The raw hashes ({field: value}, marker included) of many SKUs in one round trip, for
    the health check. Raises when Redis fails."""
    generation = generation or known_generation()
    client = _redis()
    if client is None:
        return {sku_id: dict(cache.get(_local_key(generation, sku_id)) or {}) for sku_id in sku_ids}
    replies = _roundtrip(client, lambda run: [("HGETALL", _key(generation, run, s)) for s in sku_ids])
    return {sku_id: _fields(reply) for sku_id, reply in zip(sku_ids, replies, strict=True)}


# --- writes ---------------------------------------------------------------------------------------


def publish_level(state) -> None:
    """Write one warehouse's numbers for one SKU, if newer than the cached ones; when the SKU's
    hash is not complete, fill it from the database (the write alone cannot complete it)."""
    try:
        generation = state.generation or CacheGeneration.current()
        note_generation(generation)
        field = str(state.warehouse_id)
        value = encode(state.version, state.on_hand, state.reserved, state.safety_stock)
        client = _redis()
        if client is None:
            fields = dict(cache.get(_local_key(generation, state.sku_id)) or {})
            if field not in fields or decode(fields[field])["version"] < state.version:
                fields[field] = value
                cache.set(_local_key(generation, state.sku_id), fields, TTL_SECONDS)
            complete = COMPLETE in fields
        else:
            complete = _roundtrip(client, lambda run: [(
                "EVAL", _PUBLISH, 1, _key(generation, run, state.sku_id), field, state.version, value,
                TTL_SECONDS, COMPLETE)])[0]
        if not complete:
            from .selectors_availability import levels_from_database

            fill_levels([(state.sku_id, levels_from_database(state.sku_id), None)], generation=generation)
    except Exception:  # noqa: BLE001 - the cache is an optimisation; the database is the truth
        logger.warning("availability cache write skipped for sku %s", state.sku_id, exc_info=True)


def _fill_args(levels: dict[int, dict], seen: dict[str, str] | None) -> list:
    args: list = []
    seen = seen or {}
    for warehouse_id, n in levels.items():
        field = str(warehouse_id)
        args += [field, n["version"], encode(n["version"], n["on_hand"], n["reserved"], n["safety_stock"]),
                 seen.get(field, "")]
    for field, value in seen.items():  # cached warehouses the database does not have
        if field != COMPLETE and int(field) not in levels:
            args += [field, _REMOVE, "", value]
    return args


def fill_levels(items: list[tuple[int, dict[int, dict], dict[str, str] | None]], *,
                generation: str | None = None, miss: bool = False) -> int:
    """Write database values into SKU hashes and mark them complete, in one round trip: a fill
    after a miss, or the health check's repair. Each item is (SKU id, {warehouse_id: numbers}
    read from the database in one query, the cached fields the caller read and found wrong or
    None). A cached value newer than the database's is kept (a commit the read did not see),
    unless it is the one found wrong. `miss` counts a cache miss. Returns the number of fields
    changed; raises when Redis fails."""
    generation = generation or known_generation()
    client = _redis()
    if client is None:
        if miss:
            _local_incr(MISSES)
        return sum(_local_fill(generation, sku_id, levels, seen) for sku_id, levels, seen in items)
    stats = [("INCR", cache.make_and_validate_key(MISSES))] if miss else []
    replies = _roundtrip(client, lambda run: [
        ("EVAL", _FILL, 1, _key(generation, run, sku_id), TTL_SECONDS, COMPLETE, *_fill_args(levels, seen))
        for sku_id, levels, seen in items
    ] + stats)
    return sum(int(reply) for reply in replies[:len(items)])


def replace_levels(sku_id: int, levels: dict[int, dict], *, generation: str | None = None,
                   miss: bool = False) -> bool:
    """Fill one SKU's hash from database values (see fill_levels); False when Redis failed."""
    try:
        fill_levels([(sku_id, levels, None)], generation=generation, miss=miss)
        return True
    except Exception:  # noqa: BLE001
        logger.warning("availability cache fill skipped for sku %s", sku_id, exc_info=True)
        return False


def _local_fill(generation: str, sku_id: int, levels: dict[int, dict], seen: dict[str, str] | None) -> int:
    """fill_levels for the non-Redis cache (development): the same rules, not atomic."""
    key = _local_key(generation, sku_id)
    fields = dict(cache.get(key) or {})
    args = _fill_args(levels, seen)
    changed = 0
    for i in range(0, len(args), 4):
        field, version, value, seen_value = args[i:i + 4]
        current = fields.get(field)
        if current is None or current == seen_value or decode(current)["version"] <= version:
            if value == "":
                changed += fields.pop(field, None) is not None
            elif current != value:
                fields[field] = value
                changed += 1
    fields[COMPLETE] = "1"
    cache.set(key, fields, TTL_SECONDS)
    return changed


def forget(sku_id: int, *, generation: str | None = None) -> None:
    generation = generation or known_generation()
    try:
        client = _redis()
        if client is None:
            cache.delete(_local_key(generation, sku_id))
        else:
            _roundtrip(client, lambda run: [("DEL", _key(generation, run, sku_id))])
    except Exception:  # noqa: BLE001
        logger.warning("availability cache delete skipped for sku %s", sku_id, exc_info=True)


# --- statistics -----------------------------------------------------------------------------------


def _local_incr(name: str) -> None:
    cache.get_or_set(name, 0)
    cache.incr(name)


def take_counts() -> tuple[int, int]:
    """Hits and misses since the last call (read and reset). Reads are counted with the read,
    misses with the fill that follows one: hits are the difference."""
    try:
        client = _redis()
        if client is None:
            reads, misses = cache.get(READS, 0), cache.get(MISSES, 0)
            cache.set_many({READS: 0, MISSES: 0})
        else:
            reads, misses = _roundtrip(client, lambda run: [
                ("GETSET", cache.make_and_validate_key(READS), 0),
                ("GETSET", cache.make_and_validate_key(MISSES), 0),
            ])
        reads, misses = int(reads or 0), int(misses or 0)
        return max(reads - misses, 0), misses
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
