"""fewer_collections: the collector's settings change inside and come back after."""

import gc
import threading

from littleflow.memory import fewer_collections


def test_settings_come_back_after_nested_blocks():
    before = gc.get_threshold()
    with fewer_collections():
        inside = gc.get_threshold()
        with fewer_collections():
            assert gc.get_threshold() == inside
        assert gc.get_threshold() == inside
    assert inside != before and gc.get_threshold() == before


def test_settings_come_back_after_blocks_in_several_threads():
    before = gc.get_threshold()
    inside, leave = threading.Barrier(3, timeout=5), threading.Event()

    def block():
        with fewer_collections():
            inside.wait()
            leave.wait(5)

    threads = [threading.Thread(target=block) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()
    assert gc.get_threshold() != before
    leave.set()
    for thread in threads:
        thread.join()
    assert gc.get_threshold() == before
