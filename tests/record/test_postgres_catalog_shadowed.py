"""Someone who can write the fleet's database but holds no key (a role owning the lineage tables, or the
database) puts a trigger on `chain` that erases a forbidden flow's write as it is made (its signed entry and its
row), and hides the trigger from the check that names triggers on the lineage tables: a `to_regclass` of their
own, first on the writers' search path (ALTER DATABASE ... SET search_path = public, pg_catalog, which every
new connection takes), answering NULL to that check alone. Verify said intact and a keyed writer started. The
check reads pg_catalog's functions, catalogs and operators by their qualified names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from proxy.errors import StartupError
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = b"kept-out-of-the-database's-reach"
FLOW = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")
HIDE = """
CREATE FUNCTION public.hide() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    DELETE FROM chain WHERE seq = NEW.seq;
    DELETE FROM edges WHERE checkpoint = 'forbidden-model';
    RETURN NULL;
END $$;
CREATE TRIGGER hide AFTER INSERT ON chain FOR EACH ROW WHEN (NEW.body LIKE '%forbidden-model%') EXECUTE FUNCTION public.hide();
CREATE FUNCTION public.to_regclass(text) RETURNS regclass LANGUAGE sql AS $$
    SELECT CASE WHEN pg_catalog.current_query() LIKE '%pg_trigger%' THEN NULL ELSE pg_catalog.to_regclass($1) END
$$;
"""


def test_a_trigger_hidden_behind_a_function_of_the_search_path_is_named(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.database()
    name = url.rsplit("/", 1)[1].split("?")[0]
    key_file = tmp_path / "chain.key"
    key_file.write_bytes(KEY)
    writer = PostgresStore(url, key=KEY)  # a sidecar running as the trigger is made
    writer.upsert([(FLOW, 100.0, 100.0, 5, None)])
    with psycopg.connect(url, autocommit=True) as conn:  # no key: only the database
        conn.execute(HIDE)
        conn.execute(f"ALTER DATABASE {name} SET search_path = public, pg_catalog")
    writer.upsert([(FLOW._replace(caller="ads-ranker", checkpoint="forbidden-model"), 200.0, 200.0, 1, None)])
    writer.close()
    done = subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", url, "--integrity", "--key-file",
                           str(key_file)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "chain: trigger hide" in done.stdout, done.stdout + done.stderr  # HEAD: intact
    with pytest.raises(StartupError, match="chain: trigger hide"):  # HEAD: started, and signed on
        PostgresStore(url, key=KEY)
