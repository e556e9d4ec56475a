"""Wrong dashboard passwords back off: the limiter on a clock the test turns (no sleeping)."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from dashboard.access import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(**kwargs) -> tuple[Backoff, Clock]:
    clock = Clock()
    return Backoff(clock=clock, **kwargs), clock


def test_a_wrong_guess_makes_the_client_wait_a_second_then_doubling_up_to_the_cap():
    b, clock = limiter(first=1.0, cap=8.0)
    delays = []
    for _ in range(6):
        assert b.wait("ip:10.0.0.1") == 0
        delays.append(b.failed("ip:10.0.0.1"))
        clock.now += delays[-1]  # exactly when the wait lapses
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_guess_during_the_wait_is_refused_without_being_compared():
    b, clock = limiter()
    compared = []

    def right() -> bool:
        compared.append(True)
        return True

    assert b.guess("ip:a", lambda: False) == ("wrong", 1.0)
    clock.now += 0.5
    assert b.guess("ip:a", right) == ("wait", 0.5)
    assert not compared  # the right password, refused unseen
    clock.now += 0.5
    assert b.guess("ip:a", right) == ("ok", 0.0)


def test_success_resets_the_client():
    b, clock = limiter()
    for _ in range(3):
        clock.now += b.failed("ip:a")
    b.succeeded("ip:a")
    assert b.wait("ip:a") == 0 and b.failed("ip:a") == 1.0


def test_clients_back_off_apart():
    b, _ = limiter()
    b.failed("ip:a")
    assert b.wait("ip:a") == 1.0 and b.wait("ip:b") == 0


def test_a_long_idle_client_starts_again_from_the_first_delay():
    b, clock = limiter(cap=300.0, forget_after=3600.0)
    for _ in range(5):
        clock.now += b.failed("ip:a")
    clock.now += 3601
    assert b.failed("ip:a") == 1.0


def test_memory_is_bounded_oldest_forgotten_first():
    b, _ = limiter(max_clients=3)
    for name in "abcd":
        b.failed(f"ip:{name}")
    assert b.wait("ip:a") == 0 and b.wait("ip:d") == 1.0


def test_guesses_at_once_from_many_sessions_of_one_client_get_one_comparison():
    b, _ = limiter()
    compared = []
    start = threading.Barrier(8)

    def guess() -> None:
        start.wait()
        b.guess("ip:a", lambda: compared.append(1) or False)

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(compared) == 1  # the other seven met the back-off the first one earned


@given(st.lists(st.tuples(st.sampled_from(["wrong", "right"]), st.floats(0, 1000, allow_nan=False))))
def test_no_guess_is_compared_before_the_wait_it_earned(steps):
    """Whatever the guesses and gaps: a guess is compared only once the client's wait has lapsed, the
    wait after n wrong guesses in a row is min(cap, 2**(n-1)), and a right one clears it."""
    b, clock = limiter(first=1.0, cap=300.0, forget_after=1e9)
    allowed_at, wrong_in_a_row = 0.0, 0
    for kind, gap in steps:
        clock.now += gap
        verdict, wait = b.guess("ip:a", lambda kind=kind: kind == "right")
        if clock.now < allowed_at:
            assert (verdict, wait) == ("wait", allowed_at - clock.now)
        elif kind == "right":
            assert verdict == "ok"
            allowed_at, wrong_in_a_row = 0.0, 0
        else:
            wrong_in_a_row += 1
            assert (verdict, wait) == ("wrong", min(300.0, 2.0 ** (wrong_in_a_row - 1)))
            allowed_at = clock.now + wait
