"""Signal names for logs, status and replies, real-time signals included."""

from __future__ import annotations

import signal

from procpilot.core.signals import signal_name


def test_named_signals_keep_their_names() -> None:
    assert signal_name(signal.SIGTERM) == "SIGTERM"
    assert signal_name(signal.SIGRTMIN) == "SIGRTMIN"
    assert signal_name(signal.SIGRTMAX) == "SIGRTMAX"


def test_realtime_signals_count_from_sigrtmin() -> None:
    assert signal_name(signal.SIGRTMIN + 6) == "SIGRTMIN+6"


def test_a_number_no_signal_has_is_said_as_a_number() -> None:
    assert signal_name(0) == "signal 0"
    assert signal_name(999) == "signal 999"
