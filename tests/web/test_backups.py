"""Backups that restore: a base backup and archived WAL put the embedded cluster back exactly as it
was at a moment; a failed restore leaves the cluster as it was; a dump restores into a new database.

The embedded cluster here is one of its own under a temporary folder (the suite's cluster is left
alone); the dump goes through DATABASE_URL to a small database of the suite's cluster.
"""
from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from geo import backups, restore, settings
from geo.cluster import Cluster
from geo.errors import InvalidInput, SetupError
from tests.scratch import cluster_folder
from web.cli import main

pytestmark = pytest.mark.skipif(bool(settings.database_url()), reason="DATABASE_URL is set")
DB = "pitr"


@pytest.fixture(scope="module")
def cluster():
    with cluster_folder("backups") as folder:
        c = Cluster(folder / "var")
        try:
            c.start()
            c.ensure_database(DB)
            yield c
        finally:
            c.stop()


@pytest.fixture()
def run(cluster, monkeypatch):
    """`anwang …` with the temporary cluster as the embedded one."""
    monkeypatch.setenv("ANWANG_VAR", str(cluster.root))
    monkeypatch.delenv("ANWANG_BACKUPS", raising=False)
    monkeypatch.delenv("ANWANG_DB_PORT", raising=False)

    def invoke(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def sql(cluster: Cluster, statement: str, dbname: str = DB):
    with cluster.connect(dbname) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else None


def rows(cluster: Cluster) -> list[int]:
    return [n for (n,) in sql(cluster, "SELECT n FROM t ORDER BY n")]


def test_archiving_is_on_from_the_start(cluster):
    state = backups.archiving(cluster)
    assert state.mode == "on" and state.folder == cluster.backup_dir / "wal" / cluster.system_id()
    assert backups.enable_archiving(cluster) is False          # nothing to change, no restart


def test_restore_to_a_moment_finds_exactly_its_rows(cluster, run):
    sql(cluster, "CREATE TABLE t (n int)")
    sql(cluster, "INSERT INTO t SELECT generate_series(1, 3)")
    made = run("backup")
    assert made.exit_code == 0, made.output
    assert "verified" in made.output and "anwang restore --to" in made.output
    sql(cluster, "INSERT INTO t SELECT generate_series(4, 6)")
    time.sleep(0.2)
    moment = datetime.now(UTC)
    time.sleep(0.2)
    sql(cluster, "INSERT INTO t SELECT generate_series(7, 9)")

    listed = run("backup", "list")
    assert listed.exit_code == 0 and " base " in listed.output and "archived WAL" in listed.output

    done = run("restore", "--to", moment.isoformat(), "--yes")
    assert done.exit_code == 0, done.output
    assert rows(cluster) == [1, 2, 3, 4, 5, 6]
    assert "restored the embedded cluster to" in done.output and "timeline" in done.output
    assert list(cluster.data_dir.parent.glob("data.before-restore-*"))          # the old data kept aside
    assert sql(cluster, "SELECT pg_is_in_recovery()") == [(False,)]            # promoted: writable again
    sql(cluster, "INSERT INTO t VALUES (10)")


def test_restore_without_a_moment_replays_all_of_the_archive(cluster, run):
    before = rows(cluster)
    sql(cluster, "INSERT INTO t VALUES (11)")
    done = run("restore", "--yes")
    assert done.exit_code == 0, done.output
    assert rows(cluster) == before + [11]


def test_a_failed_restore_leaves_the_cluster_as_it_was(cluster):
    before = rows(cluster)
    good = backups.list_backups(cluster.backup_dir)[-1]
    broken = good.path.with_name(good.id + "-broken")
    shutil.copytree(good.path, broken, symlinks=True)
    (broken / "backup.json").write_text((good.path / "backup.json").read_text()
                                        .replace(f'"id": "{good.id}"', f'"id": "{broken.name}"'))
    (broken / "data" / "global" / "pg_control").unlink()      # no server starts from this
    try:
        with pytest.raises(SetupError):
            restore.restore_cluster(cluster, backup_id=broken.name)
        assert rows(cluster) == before
        assert list(cluster.data_dir.parent.glob("data.failed-restore-*"))
    finally:
        shutil.rmtree(broken)


def test_a_moment_before_every_backup_is_refused(cluster, run):
    result = run("restore", "--to", "2001-01-01 00:00", "--yes")
    assert result.exit_code == 1 and "no backup finished before" in result.output
    assert run("restore", "--backup", "nope", "--yes").exit_code == 1
    assert run("restore", "--to", "yesterday", "--yes").output.startswith("error (to): a time like")


def test_keep_deletes_older_backups_and_the_wal_only_they_needed(cluster, run):
    result = run("backup", "--keep", "1")
    assert result.exit_code == 0 and "deleted" in result.output
    kept = [b for b in backups.list_backups(cluster.backup_dir) if b.kind == "base"]
    assert len(kept) == 1
    oldest = kept[0].meta["start_wal"][8:]
    segments = [f.name[8:24] for f in cluster.wal_archive().glob("*.gz")
                if len(f.name) == 27]
    assert segments and min(segments) >= oldest


def test_a_lost_data_folder_comes_back_from_the_backups(cluster, run):
    before = rows(cluster)
    cluster.stop()
    shutil.rmtree(cluster.root / "pg")
    done = run("restore", "--yes")
    assert done.exit_code == 0, done.output
    assert rows(cluster) == before


def test_a_dump_of_a_database_url_server_restores_into_a_new_database(engine, tmp_path, monkeypatch):
    server = Cluster.default()
    source, copy = "anwang_test_dumped", "anwang_test_dumped_copy"
    for name in (source, copy):
        server.drop_database(name)
    server.ensure_database(source)
    sql(server, "CREATE TABLE places (n int, geom geometry(Point, 4326))", source)
    sql(server, "INSERT INTO places SELECT n, ST_Point(n, n, 4326) FROM generate_series(1, 5) n", source)
    monkeypatch.setenv("DATABASE_URL", server.url(source))
    monkeypatch.setenv("ANWANG_BACKUPS", str(tmp_path))
    runner = CliRunner()
    try:
        made = runner.invoke(main, ["backup"], catch_exceptions=False)
        assert made.exit_code == 0, made.output
        assert "pg_dump of database anwang_test_dumped" in made.output
        sql(server, "INSERT INTO places VALUES (6, NULL)", source)
        done = runner.invoke(main, ["restore", "--into", copy], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        assert sql(server, "SELECT count(*), sum(ST_X(geom)) FROM places", copy) == [(5, 15.0)]
        again = runner.invoke(main, ["restore", "--into", copy], catch_exceptions=False)
        assert again.exit_code == 1 and "exists" in again.output           # never over a database
    finally:
        for name in (source, copy):
            server.drop_database(name)


def test_choose_takes_the_newest_backup_finished_before_the_moment():
    def b(ident, finished):
        return backups.Backup(ident, "base", None, finished, finished, 0, {"system": "1"})
    found = [b("a", datetime(2026, 1, 1, tzinfo=UTC)), b("b", datetime(2026, 2, 1, tzinfo=UTC))]
    assert restore.choose(found, "base", datetime(2026, 1, 15, tzinfo=UTC), None).id == "a"
    assert restore.choose(found, "base", None, None).id == "b"
    with pytest.raises(InvalidInput):
        restore.choose(found, "base", datetime(2026, 1, 15, tzinfo=UTC), "b")
