"""Channel cleansing rules applied to a normalised order input (a plain dict)."""

from collections.abc import Iterable


def _targets(data: dict, path: str):
    """(container, key) pairs a dotted path points at; `lines[].sku` fans out over lines."""
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        items = data.get(head[:-2]) or []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                yield from _targets(item, rest) if rest else ()
        return
    if not rest:
        if head in data:
            yield data, head
        return
    child = data.get(head)
    if isinstance(child, dict):
        yield from _targets(child, rest)


def apply_rules(data: dict, rules: Iterable) -> dict:
    for rule in rules:
        for container, key in list(_targets(data, rule.field)):
            value = container[key]
            if rule.action == "drop_field":
                del container[key]
            elif rule.action == "strip_suffix" and isinstance(value, str) and rule.argument \
                    and value.endswith(rule.argument):
                container[key] = value[: -len(rule.argument)]
            elif rule.action == "strip_prefix" and isinstance(value, str) and rule.argument \
                    and value.startswith(rule.argument):
                container[key] = value[len(rule.argument):]
            elif rule.action == "map_value" and "=>" in rule.argument and not isinstance(value, dict | list):
                source, target = rule.argument.split("=>", 1)
                if str(value) == source.strip():
                    container[key] = target.strip()
    return data
