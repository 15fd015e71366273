"""Migration helpers shared by the apps."""

from django.db import migrations


def append_only(table: str) -> migrations.RunPython:
    """On PostgreSQL, a trigger that refuses UPDATE and DELETE on `table`, whoever asks."""
    function = f"{table}_append_only"
    create = f"""
        CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION '{table} is append-only (%% refused)', TG_OP;
        END;
        $$ LANGUAGE plpgsql;
        CREATE TRIGGER {function} BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {function}();
    """
    drop = f"DROP TRIGGER IF EXISTS {function} ON {table}; DROP FUNCTION IF EXISTS {function}();"

    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(create.replace("%%", "%"), params=None)

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(drop, params=None)

    return migrations.RunPython(forwards, backwards)


def immutable_columns(table: str, columns: list[str]) -> migrations.RunPython:
    """On PostgreSQL, a trigger that refuses DELETE on `table` and any UPDATE that changes one
    of `columns`; the other columns (a status, a late link) may still move forward."""
    function = f"{table}_immutable"
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in columns)
    create = f"""
        CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                RAISE EXCEPTION '{table} rows are never deleted';
            END IF;
            IF {changed} THEN
                RAISE EXCEPTION '{table}: {", ".join(columns)} are never edited in place';
            END IF;
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql;
        CREATE TRIGGER {function} BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {function}();
    """
    drop = f"DROP TRIGGER IF EXISTS {function} ON {table}; DROP FUNCTION IF EXISTS {function}();"

    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(create, params=None)

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(drop, params=None)

    return migrations.RunPython(forwards, backwards)


def foreign_key_index_dropped(model_name: str, name: str, field, table: str, column: str,
                              index: str) -> migrations.SeparateDatabaseAndState:
    """`field` (the foreign key, now with db_index=False) loses its own index, which a
    composite index leading with its column makes redundant. Only the index goes: AlterField
    would also drop and re-validate the foreign key, a long lock on a big table."""
    return migrations.SeparateDatabaseAndState(
        state_operations=[migrations.AlterField(model_name=model_name, name=name, field=field)],
        database_operations=[migrations.RunSQL(
            f'DROP INDEX IF EXISTS "{index}"',
            f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("{column}")',
        )],
    )
