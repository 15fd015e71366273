"""Hot-path statements without the ORM's per-call compilation.

A scan or a transition is a handful of one-row statements, and the ORM spends several times
more CPU building each one than PostgreSQL spends running it. The statements here are written
once from the models' metadata; rows are made into instances as the ORM makes them
(`Model.from_db`, after the backend's converters: the same objects, unselected fields deferred),
new instances are inserted and changed fields updated with the values `Model.save()` would
write. psycopg prepares the repeated statements, so PostgreSQL does not re-plan them either.
Models this shortcut does not cover (save signals, inheritance, values computed by the
database) go through the ORM.
"""

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections, transaction
from django.db.models import Model, signals

_statements: dict[tuple, str] = {}


def statement(key: tuple, build: Callable) -> str:
    """The SQL of `key` for the default connection's backend, built once by `build(connection)`."""
    connection = connections[DEFAULT_DB_ALIAS]
    full_key = (*key, connection.vendor)
    sql = _statements.get(full_key)
    if sql is None:
        sql = _statements[full_key] = build(connection)
    return sql


def fetch_rows(sql: str, params: list) -> list[tuple]:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: each is made once
class Selection:
    """Some concrete fields of a model (all of them by default), in the model's order, as
    `from_db` expects them, selected from the table under `alias`."""

    model: type[Model]
    fields: tuple
    alias: str

    @cached_property
    def attnames(self) -> list[str]:
        return [f.attname for f in self.fields]

    @cached_property
    def pk_index(self) -> int | None:
        return next((i for i, f in enumerate(self.fields) if f.primary_key), None)

    @classmethod
    def of(cls, model: type[Model], names=None, alias: str = "") -> "Selection":
        wanted = None if names is None else {model._meta.get_field(name).attname for name in names}
        fields = tuple(f for f in model._meta.concrete_fields if wanted is None or f.attname in wanted)
        return cls(model, fields, alias or model._meta.db_table)

    def columns(self, quote) -> str:
        return ", ".join(f"{quote(self.alias)}.{quote(f.column)}" for f in self.fields)

    def source(self, quote) -> str:
        table = self.model._meta.db_table
        return quote(table) if self.alias == table else f"{quote(table)} {quote(self.alias)}"


# Converters are bound to a connection's backend: one cache per connection (thread and alias),
# holding for each selection the (position, column, converters) of the fields that need any.
# On PostgreSQL none of these fields does.
_conversions: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _conversions_for(connection, selection: "Selection") -> list:
    cache = _conversions.get(connection)
    if cache is None:
        cache = _conversions[connection] = {}
    found = cache.get(selection)
    if found is None:
        found = cache[selection] = []
        for i, field in enumerate(selection.fields):
            column = field.get_col(field.model._meta.db_table)
            converters = [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]
            if converters:
                found.append((i, column, converters))
    return found


def fetch_instances(sql: str, params: list, selections: tuple["Selection", ...]) -> list | None:
    """Run a one-row SELECT of `selections`' columns (in that order); their instances, or
    None when no row matched."""
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return _instances_of(connection, row, selections)


def fetch_all_instances(sql: str, params: list, selections: tuple["Selection", ...]) -> list[list]:
    """Run a SELECT of `selections`' columns (in that order, e.g. a row and an outer join);
    for each row its instances, None for a selection whose primary key is NULL (no match)."""
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [_instances_of(connection, row, selections) for row in rows]


def _instances_of(connection, row, selections: tuple["Selection", ...]) -> list:
    instances, start = [], 0
    for selection in selections:
        end = start + len(selection.fields)
        values = row[start:end]
        if selection.pk_index is not None and values[selection.pk_index] is None:
            instances.append(None)
            start = end
            continue
        conversions = _conversions_for(connection, selection)
        if conversions:
            values = list(values)
            for i, column, converters in conversions:
                for convert in converters:
                    values[i] = convert(values[i], column, connection)
        instances.append(selection.model.from_db(connection.alias, selection.attnames, values))
        start = end
    return instances


def _insert_fields(meta) -> list:
    return [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]


def _insert_statement(model: type[Model], skip_on_conflict: bool) -> str:
    def build(connection):
        quote, meta = connection.ops.quote_name, model._meta
        fields = _insert_fields(meta)
        returning = ", ".join(quote(f.column) for f in meta.db_returning_fields)
        return (
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(fields))})"
            f"{' ON CONFLICT DO NOTHING' if skip_on_conflict else ''} RETURNING {returning}"
        )

    return statement(("insert", model._meta.label, skip_on_conflict), build)


def insert_instance(instance: Model, *, skip_on_conflict: bool = False) -> bool:
    """INSERT a new instance as `instance.save()` would. With `skip_on_conflict`, a row that
    would break a unique constraint is not inserted (no error, no savepoint) and the answer is
    False."""
    model, meta = type(instance), instance._meta
    connection = connections[DEFAULT_DB_ALIAS]
    sql, fields = _insert_statement(model, skip_on_conflict), _insert_fields(meta)
    values = [f.pre_save(instance, True) for f in fields]
    if (meta.parents or meta.order_with_respect_to or not meta.db_returning_fields
            or not connection.features.can_return_columns_from_insert
            or (skip_on_conflict and not connection.features.supports_ignore_conflicts)
            or signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model)
            or any(hasattr(value, "resolve_expression") for value in values)):
        return _orm_insert(instance, skip_on_conflict)
    instance._prepare_related_fields_for_save(operation_name="save")
    params = [f.get_db_prep_save(value, connection) for f, value in zip(fields, values, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    for field, value in zip(meta.db_returning_fields, row, strict=True):
        setattr(instance, field.attname, value)
    instance._state.adding = False
    instance._state.db = connection.alias
    return True


def _orm_insert(instance: Model, skip_on_conflict: bool) -> bool:
    if not skip_on_conflict:
        instance.save(force_insert=True)
        return True
    try:
        with transaction.atomic():
            instance.save(force_insert=True)
    except IntegrityError:
        return False
    return True


def update_fields(instance: Model, names: list[str]) -> None:
    """UPDATE the named fields of a saved instance as `instance.save(update_fields=names)` would
    (auto_now fields named here get the current time)."""
    model, meta = type(instance), instance._meta
    connection = connections[DEFAULT_DB_ALIAS]
    names = list(dict.fromkeys(names))
    fields = [meta.get_field(name) for name in names]
    values = [f.pre_save(instance, False) for f in fields]
    if (meta.parents or signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model)
            or any(hasattr(value, "resolve_expression") for value in values)):
        instance.save(update_fields=names)
        return

    def build(connection):
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
        return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608

    sql = statement(("update", meta.label, tuple(names)), build)
    params = [f.get_db_prep_save(value, connection) for f, value in zip(fields, values, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, meta.pk.get_db_prep_value(instance.pk, connection)])
        if cursor.rowcount != 1:
            raise DatabaseError(f"{meta.label} {instance.pk}: the update touched {cursor.rowcount} rows")


class SavesChanges:
    """A model mixin: `save_changes()` UPDATEs only the fields changed since the row was
    loaded (or last saved), by a compiled statement: smaller statements on hot paths, and a
    column nobody touched is never written back from a stale copy. `always_written` names
    fields written with every change (an auto_now `updated_at`)."""

    always_written: tuple[str, ...] = ()

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_values = dict(zip(field_names, values, strict=True))
        return instance

    def remember_saved_values(self) -> None:
        """What the row holds now (just inserted or saved whole)."""
        self._loaded_values = {f.attname: getattr(self, f.attname) for f in self._meta.concrete_fields}

    def changed_fields(self) -> list[str] | None:
        """Names changed since loading (None: never loaded, save it whole)."""
        loaded = getattr(self, "_loaded_values", None)
        if loaded is None or self._state.adding:
            return None
        # A field deferred at load time (`.only()`) and assigned since is in __dict__ only.
        return [
            field.name for field in self._meta.concrete_fields
            if (field.attname in loaded and getattr(self, field.attname) != loaded[field.attname])
            or (field.attname not in loaded and field.attname in self.__dict__)
        ]

    def _saved(self, changed: list[str]) -> None:
        self._loaded_values.update({field.attname: getattr(self, field.attname)
                                    for field in self._meta.concrete_fields if field.name in changed})

    def save_changes(self) -> None:
        changed = self.changed_fields()
        if changed is None:
            self.save()
            self.remember_saved_values()
        elif changed:
            update_fields(self, [*changed, *self.always_written])
            self._saved(changed)


def save_changes_together(*instances: SavesChanges) -> None:
    """`save_changes` of several rows in one round trip on PostgreSQL (data-modifying WITH
    clauses, each row count checked); elsewhere, or when one needs the ORM, one by one."""
    changes = [(instance, instance.changed_fields()) for instance in instances]
    changes = [(instance, changed) for instance, changed in changes if changed != []]
    connection = connections[DEFAULT_DB_ALIAS]
    if (len(changes) < 2 or connection.vendor != "postgresql"
            or any(changed is None or not _compilable(instance) for instance, changed in changes)):
        for instance, _changed in changes:
            instance.save_changes()
        return
    parts, params, key = [], [], []
    for instance, changed in changes:
        names = list(dict.fromkeys([*changed, *instance.always_written]))
        meta = instance._meta
        fields = [meta.get_field(name) for name in names]
        key.append((meta.label, tuple(names)))
        params += [f.get_db_prep_save(f.pre_save(instance, False), connection) for f in fields]
        params.append(meta.pk.get_db_prep_value(instance.pk, connection))
        parts.append((meta, fields))

    def build(connection):
        quote = connection.ops.quote_name
        updates = ", ".join(
            f"u{i} AS (UPDATE {quote(meta.db_table)} SET "  # noqa: S608 - our names
            + ", ".join(f"{quote(f.column)} = %s" for f in fields)
            + f" WHERE {quote(meta.pk.column)} = %s RETURNING 1)"
            for i, (meta, fields) in enumerate(parts)
        )
        counts = ", ".join(f"(SELECT count(*) FROM u{i})" for i in range(len(parts)))  # noqa: S608
        return f"WITH {updates} SELECT {counts}"

    sql = statement(("update_together", *key), build)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        counts = cursor.fetchone()
    if any(count != 1 for count in counts):
        raise DatabaseError(f"updating {[label for label, _names in key]} touched {counts} rows")
    for instance, changed in changes:
        instance._saved(changed)


def _compilable(instance: Model) -> bool:
    model = type(instance)
    return not (model._meta.parents or signals.pre_save.has_listeners(model)
                or signals.post_save.has_listeners(model))


def draw_pks(model: type[Model], count: int) -> list[int]:
    """`count` new primary keys from the table's sequence (PostgreSQL): rows built in memory
    can refer to each other before any is inserted (foreign keys are checked at commit)."""
    if count == 0:
        return []
    meta = model._meta
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                       [meta.db_table, meta.pk.column, count])
        return [pk for (pk,) in cursor.fetchall()]


def copy_instances(rows: list) -> list:
    """Insert new instances of one model in one statement, as `save()` would fill them; they
    come back saved, with their ids (drawn first for rows that have none).

    On PostgreSQL with psycopg 3 this is a COPY: JSON bodies are full of quotes, and
    bulk_create's UNNEST arrays escape every one of them in Python. Elsewhere, or for a model
    this shortcut does not cover, it is bulk_create."""
    if not rows:
        return rows
    model = type(rows[0])
    meta = model._meta
    connection = connections[DEFAULT_DB_ALIAS]
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    if (connection.vendor != "postgresql" or not is_psycopg3 or meta.parents
            or signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model)):
        return model.objects.bulk_create(rows)
    fields = [f for f in meta.concrete_fields if not f.primary_key and not f.generated]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in [meta.pk, *fields])
    missing = iter(draw_pks(model, sum(1 for row in rows if row.pk is None)))
    for row in rows:
        if row.pk is None:
            row.pk = next(missing)
    copy = f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"  # noqa: S608 - our names
    with (transaction.atomic(savepoint=False), connection.cursor() as cursor,
          connection.wrap_database_errors, cursor.cursor.copy(copy) as stream):  # IntegrityError as the ORM raises it
        for row in rows:
            stream.write_row([row.pk, *(f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields)])
    for row in rows:
        row._state.adding, row._state.db = False, connection.alias
    return rows
