"""The embedded cluster: idempotent start, socket only, never run as root, clear errors."""
import os

import pytest
from sqlalchemy import text

from geo import settings
from geo.cluster import Cluster
from geo.errors import SetupError
from tests.conftest import TEST_DB

pytestmark = pytest.mark.skipif(bool(settings.database_url()), reason="DATABASE_URL is set")


def test_second_start_is_a_no_op(engine):
    cluster = Cluster.default()
    assert cluster.running()
    assert cluster.start() is False
    cluster.ensure_database(TEST_DB)
    assert cluster.ensure_database(TEST_DB) is False


def test_listens_on_the_socket_only_and_not_as_root(session):
    assert session.execute(text("SHOW listen_addresses")).scalar() == ""
    socket_dir = session.execute(text("SHOW unix_socket_directories")).scalar()
    assert socket_dir == str(Cluster.default().socket_dir)
    owner = os.stat(Cluster.default().data_dir).st_uid
    assert owner != 0
    assert oct(os.stat(socket_dir).st_mode & 0o777) == "0o700"


def test_postgis_is_installed(session):
    assert session.execute(text("SELECT postgis_lib_version()")).scalar().startswith("3.")


def test_a_broken_data_dir_is_one_clear_error(tmp_path):
    cluster = Cluster(tmp_path / "var")
    cluster.data_dir.mkdir(parents=True)
    (cluster.data_dir / "PG_VERSION").write_text("15\n")  # looks initialised, is not
    if os.geteuid() == 0:
        import pwd
        pw = pwd.getpwnam("postgres")
        for p in (tmp_path, tmp_path / "var", tmp_path / "var" / "pg", cluster.data_dir):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    with pytest.raises(SetupError, match="did not start"):
        cluster.start()
