"""The SQLite spool: durability across reopen, groups and their tokens, the bound, the directory lock."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tracemill.collector.ingest.spool import Spool, SpoolError, SpoolFullError, SpoolLockedError
from tracemill.errors import ConfigError


def _fill(spool: Spool, count: int, spans: int = 10) -> list[int]:
    return [spool.append(f"payload-{i}".encode() * 10, spans) for i in range(count)]


def test_appended_batches_survive_reopen_with_their_payloads(tmp_path):
    with Spool.open(str(tmp_path)) as spool:
        ids = _fill(spool, 3)
    with Spool.open(str(tmp_path)) as spool:
        assert spool.pending_spans == 30
        assert [p for _, p in spool.payloads(ids)] == [f"payload-{i}".encode() * 10 for i in range(3)]
        assert spool.stats().batches == 3


def test_spool_uses_wal_journal(tmp_path):
    Spool.open(str(tmp_path)).close()
    import sqlite3

    mode = sqlite3.connect(tmp_path / "spool.sqlite3").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_group_token_names_the_spool_and_its_batch_range(tmp_path):
    with Spool.open(str(tmp_path)) as spool:
        _fill(spool, 4)
        group = spool.record_group(spool.unclaimed(max_spans=25))
        assert group.batch_ids == (1, 2)  # 25 spans hold two batches of 10, not three
        assert group.span_count == 20
        assert group.token == f"tracemill:{spool.spool_id}:1-2"


def test_unclaimed_always_gives_at_least_one_batch_even_over_max_spans(tmp_path):
    with Spool.open(str(tmp_path)) as spool:
        spool.append(b"big", 5000)
        assert [b.id for b in spool.unclaimed(max_spans=100)] == [1]


def test_recorded_group_is_found_again_after_reopen_with_the_same_batches_and_token(tmp_path):
    with Spool.open(str(tmp_path)) as spool:
        _fill(spool, 5)
        group = spool.record_group(spool.unclaimed(max_spans=30))
    # the process died here: inserted or not, the group must come back exactly as recorded
    with Spool.open(str(tmp_path)) as spool:
        (again,) = spool.recorded_groups()
        assert (again.token, again.batch_ids, again.span_count) == (group.token, group.batch_ids, group.span_count)
        assert [b.id for b in spool.unclaimed(max_spans=1000)] == [4, 5]


def test_confirmed_group_and_its_batches_are_gone_after_reopen(tmp_path):
    with Spool.open(str(tmp_path)) as spool:
        _fill(spool, 3)
        spool.confirm(spool.record_group(spool.unclaimed(max_spans=20)))
        assert spool.pending_spans == 10
    with Spool.open(str(tmp_path)) as spool:
        assert spool.recorded_groups() == []
        assert [b.id for b in spool.unclaimed(max_spans=100)] == [3]
        assert spool.pending_spans == 10


def test_batch_ids_are_never_reused_after_everything_is_confirmed(tmp_path):
    with Spool.open(str(tmp_path)) as spool:
        _fill(spool, 2)
        spool.confirm(spool.record_group(spool.unclaimed(max_spans=100)))
        (new_id,) = _fill(spool, 1)
        assert new_id == 3  # a reused id would reuse a deduplication token and drop new spans


def test_each_spool_directory_has_its_own_id(tmp_path):
    with Spool.open(str(tmp_path / "a")) as a, Spool.open(str(tmp_path / "b")) as b:
        assert a.spool_id != b.spool_id


def test_recording_an_already_claimed_batch_raises(tmp_path):
    with Spool.open(str(tmp_path)) as spool:
        _fill(spool, 2)
        batches = spool.unclaimed(max_spans=100)
        spool.record_group(batches)
        with pytest.raises(SpoolError, match="already in a group"):
            spool.record_group(batches)


def test_append_beyond_the_bound_raises_spool_full_and_stores_nothing(tmp_path):
    with Spool.open(str(tmp_path), max_bytes=250) as spool:
        spool.append(b"x" * 200, 1)
        with pytest.raises(SpoolFullError, match="200 bytes of its 250-byte bound"):
            spool.append(b"y" * 100, 1)
        assert spool.stats().batches == 1


def test_one_batch_larger_than_the_bound_is_taken_when_the_spool_is_empty(tmp_path):
    # otherwise a request over the bound could never get through; the size limit bounds it instead
    with Spool.open(str(tmp_path), max_bytes=10) as spool:
        spool.append(b"x" * 50, 1)
        assert spool.pending_bytes == 50


def test_confirming_frees_room_under_the_bound(tmp_path):
    with Spool.open(str(tmp_path), max_bytes=250) as spool:
        spool.append(b"x" * 200, 1)
        spool.confirm(spool.record_group(spool.unclaimed(max_spans=10)))
        spool.append(b"y" * 200, 1)


def test_buried_batch_leaves_the_pending_counts_and_is_counted_dead(tmp_path):
    with Spool.open(str(tmp_path)) as spool:
        ids = _fill(spool, 2)
        spool.bury(ids[0], "ValueError: cannot convert")
        stats = spool.stats()
        assert (stats.batches, stats.spans, stats.dead_batches) == (1, 10, 1)


def test_second_process_on_the_same_spool_raises_locked_naming_the_holder(tmp_path):
    with Spool.open(str(tmp_path)):
        code = (
            "import sys\n"
            "from tracemill.collector.ingest.spool import Spool, SpoolLockedError\n"
            "try:\n"
            "    Spool.open(sys.argv[1])\n"
            "except SpoolLockedError as exc:\n"
            "    print(exc)\n"
        )
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    import os

    assert f"in use by process {os.getpid()}" in out.stdout
    assert "--spool" in out.stdout


def test_spool_lock_is_released_on_close(tmp_path):
    Spool.open(str(tmp_path)).close()
    Spool.open(str(tmp_path)).close()


def test_second_open_in_the_same_process_raises_locked(tmp_path):
    with Spool.open(str(tmp_path)), pytest.raises(SpoolLockedError):
        Spool.open(str(tmp_path))


@pytest.mark.parametrize(("kwargs", "message"), [({"max_bytes": 0}, "max_bytes"), ({"synchronous": "off"}, "'full'")])
def test_bad_spool_settings_raise_config_error(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Spool.open(str(tmp_path), **kwargs)


def test_closed_spool_raises_spool_error(tmp_path):
    spool = Spool.open(str(tmp_path))
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.append(b"x", 1)


def test_lock_file_no_longer_names_the_process_after_close(tmp_path):
    spool = Spool.open(str(tmp_path))
    import os

    assert (tmp_path / "lock").read_text() == str(os.getpid())
    spool.close()
    assert (tmp_path / "lock").read_text() == ""


def _disk_bytes(directory) -> int:
    return sum(f.stat().st_size for f in directory.iterdir() if f.name.startswith("spool.sqlite3"))


def test_an_empty_spool_gives_its_disk_back_once_its_batches_are_confirmed(tmp_path):
    with Spool.open(str(tmp_path)) as spool:
        for i in range(24):
            spool.append(bytes([i]) * (1 << 20), 1)
        full = _disk_bytes(tmp_path)
        assert full > 24 << 20
        spool.confirm(spool.record_group(spool.unclaimed(max_spans=1000)))
        assert spool.stats().batches == 0
        assert _disk_bytes(tmp_path) < 1 << 20
        # Still a working spool.
        spool.append(b"after", 1)
        assert spool.payloads([b.id for b in spool.unclaimed(max_spans=10)])[0][1] == b"after"


def test_a_spool_still_holding_batches_is_not_rewritten(tmp_path):
    with Spool.open(str(tmp_path)) as spool:
        for i in range(8):
            spool.append(bytes([i]) * (1 << 20), 1)
        first = spool.record_group(spool.unclaimed(max_spans=4))
        spool.confirm(first)
        assert spool.stats().batches == 4 and _disk_bytes(tmp_path) > 8 << 20


def test_an_empty_spool_holding_set_aside_batches_is_rewritten_only_when_most_of_it_is_free(tmp_path):
    with Spool.open(str(tmp_path)) as spool:
        for i in range(8):
            spool.append(bytes([i]) * (1 << 20), 1)
        spool.bury(spool.unclaimed(max_spans=1)[0].id, "kept for inspection")
        spool.confirm(spool.record_group(spool.unclaimed(max_spans=1000)))
        assert spool.stats().dead_batches == 1
        assert _disk_bytes(tmp_path) < 3 << 20  # 7 MiB free of 8: rewritten, the set-aside batch kept
        assert spool.stats().dead_batches == 1
