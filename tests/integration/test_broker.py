"""The integration infrastructure itself: a real broker, topics, producing and consuming."""

from collections import Counter
from collections.abc import Callable

from tests.integration.conftest import consume_all, produce


def test_round_robin_over_three_partitions(bootstrap: str,
                                           topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(partitions=3)
    payloads = [f'{{"n": {i}}}'.encode() for i in range(30)]

    sent = produce(bootstrap, topic, payloads, partition=[i % 3 for i in range(30)])

    records = consume_all(bootstrap, topic, timeout_s=30)
    assert sent == 30
    assert len(records) == 30
    assert Counter(r.partition for r in records) == {0: 10, 1: 10, 2: 10}
    assert sorted(r.value for r in records if r.value is not None) == sorted(payloads)
    for partition in range(3):
        in_partition = [r for r in records if r.partition == partition]
        assert [r.offset for r in in_partition] == list(range(10))
        assert [r.value for r in in_partition] == payloads[partition::3]
