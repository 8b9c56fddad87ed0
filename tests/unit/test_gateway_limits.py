"""Per-user Dask limits: which apply, and what a new cluster or a scale request may use."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.limits import (
    LimitExceeded,
    Limits,
    Shape,
    check_new_cluster,
    describe_limit,
    limits_for,
    parse_limits,
    workers_allowed,
)

GIB = 1024**3
BASE = Limits(max_clusters=2, max_cores=4, max_memory=8 * GIB, max_workers=4)


def shape(workers: int = 0, worker_cores: float = 1, worker_memory: int = GIB) -> Shape:
    return Shape(scheduler_cores=0.5, scheduler_memory=GIB // 2, worker_cores=worker_cores,
                 worker_memory=worker_memory, workers=workers)


def test_limits_parse_memory_and_fill_missing_keys_from_the_base() -> None:
    assert parse_limits({"max_clusters": 2, "max_cores": 4, "max_memory": "8G", "max_workers": 4}) == BASE
    assert parse_limits({"max_memory": "16G"}, BASE) == Limits(2, 4, 16 * GIB, 4)
    with pytest.raises(ValueError, match="max_workers is missing"):
        parse_limits({"max_clusters": 1, "max_cores": 1, "max_memory": "1G"})


def test_group_overrides_take_the_most_generous_value_of_each_limit() -> None:
    groups: dict[str, dict[str, Any]] = {"big": {"max_clusters": 5, "max_memory": "32G"},
                                         "wide": {"max_clusters": 3, "max_workers": 20}}
    assert limits_for(BASE, groups, []) == BASE
    assert limits_for(BASE, groups, ["other"]) == BASE
    assert limits_for(BASE, groups, ["big"]) == Limits(5, 4, 32 * GIB, 4)
    assert limits_for(BASE, groups, ["wide", "big"]) == Limits(5, 4, 32 * GIB, 20)


def test_a_group_can_also_lower_a_limit() -> None:
    assert limits_for(BASE, {"interns": {"max_clusters": 1}}, ["interns"]).max_clusters == 1


def test_shape_counts_the_scheduler_and_every_worker() -> None:
    s = shape(workers=3)
    assert s.cores == 3.5
    assert s.memory == GIB // 2 + 3 * GIB


def test_new_cluster_within_limits_passes() -> None:
    check_new_cluster(BASE, [shape(workers=2)], shape())


@pytest.mark.parametrize(("limits", "active", "limit"), [
    (BASE, [shape(), shape()], "max_clusters"),
    (Limits(5, 1.5, 64 * GIB, 10), [shape(workers=1)], "max_cores"),
    (Limits(5, 64, GIB + GIB // 2, 10), [shape(workers=1)], "max_memory"),
])
def test_new_cluster_over_a_limit_is_refused_naming_it(limits: Limits, active: list[Shape], limit: str) -> None:
    with pytest.raises(LimitExceeded) as raised:
        check_new_cluster(limits, active, shape())
    assert raised.value.limit == limit
    assert f"({limit})" in str(raised.value)


def test_max_clusters_zero_refuses_every_cluster() -> None:
    with pytest.raises(LimitExceeded, match="your limit is 0"):
        check_new_cluster(Limits(0, 4, 8 * GIB, 4), [], shape())


def test_workers_allowed_is_decided_by_the_tightest_limit() -> None:
    # Alone: 4 workers (max_workers); cores: (4 - 0.5) // 1 = 3 -> max_cores decides.
    assert workers_allowed(BASE, [], shape()) == (3, "max_cores")
    # Half-core workers: cores allow 7, max_workers 4.
    assert workers_allowed(BASE, [], shape(worker_cores=0.5)) == (4, "max_workers")
    # 3 GiB workers: (8 - 0.5) // 3 = 2 -> max_memory.
    assert workers_allowed(BASE, [], shape(worker_memory=3 * GIB)) == (2, "max_memory")


def test_workers_allowed_counts_the_users_other_clusters() -> None:
    others = [shape(workers=2, worker_cores=0.5)]  # 1.5 cores, 2 workers, 1.5 GiB
    assert workers_allowed(BASE, others, shape(worker_cores=0.5)) == (2, "max_workers")
    assert workers_allowed(BASE, others, shape()) == (2, "max_workers")
    assert workers_allowed(BASE, [shape(workers=4)], shape()) == (0, "max_cores")


def test_workers_allowed_is_never_negative() -> None:
    assert workers_allowed(BASE, [shape(workers=9)], shape())[0] == 0


def test_describe_limit_formats_memory() -> None:
    assert describe_limit(BASE, "max_memory") == "max_memory=8 GiB"
    assert describe_limit(BASE, "max_cores") == "max_cores=4"
