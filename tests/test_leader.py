"""One worker leads: a PostgreSQL advisory lock held by a session of its own."""
from __future__ import annotations

import time

import pytest
from conftest import PG_URL

from hub.leader import Leadership


def test_on_sqlite_the_single_worker_leads(tmp_path):
    leadership = Leadership(f"sqlite:///{tmp_path}/hub.db")
    assert not leadership.elected and leadership.try_acquire()


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="needs CARBONHUB_TEST_DATABASE_URL (PostgreSQL)")
def test_exactly_one_worker_leads_and_a_standby_takes_over():
    first, second = Leadership(PG_URL), Leadership(PG_URL)
    try:
        assert first.try_acquire()
        assert not second.try_acquire() and not second.try_acquire()  # a standby keeps trying
        assert first.try_acquire()  # the leader stays leader
        first.conn.close()  # the leader's process dies: PostgreSQL ends its session and its lock
        deadline = time.monotonic() + 10  # the server ends the session's backend a moment after the socket
        while not second.try_acquire():  # a standby keeps trying, and takes over
            assert time.monotonic() < deadline, "the standby never took over from the dead leader"
            time.sleep(0.02)
        third = Leadership(PG_URL)
        assert not third.try_acquire()
        third.release()
    finally:
        first.release()
        second.release()
