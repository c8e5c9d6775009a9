"""Capturing a step's output: what lands in its logs and what is echoed where."""

from __future__ import annotations

import logging
import sys
import threading

from pipeledger.orchestrators.capture import capture_output


def test_logs_hold_exactly_what_was_written_and_the_sink_gets_each_stream() -> None:
    echoed: list[tuple[str, str]] = []
    with capture_output(lambda stream, text: echoed.append((stream, text))) as logs:
        print("a")
        sys.stderr.write("b\r")
        sys.stdout.write("c")
    assert logs.getvalue() == "a\nb\rc"
    assert echoed == [("stdout", "a"), ("stdout", "\n"), ("stderr", "b\r"), ("stdout", "c")]


def test_records_of_pipeledgers_own_threads_are_not_the_steps(caplog: object) -> None:
    def beat() -> None:
        logging.getLogger("pipeledger.orchestrators.heartbeat").warning("heartbeat of run x failed")

    with capture_output(False) as logs:
        logging.getLogger("user").warning("from the step")
        thread = threading.Thread(target=beat, name="pipeledger-heartbeat-1234")
        thread.start()
        thread.join()
    assert "from the step" in logs.getvalue()
    assert "heartbeat" not in logs.getvalue()


def test_the_tees_look_like_text_streams() -> None:
    with capture_output(False):
        assert isinstance(sys.stdout.encoding, str)
        assert not sys.stdout.isatty()
        try:
            sys.stdout.write(b"bytes")  # type: ignore[arg-type]
        except TypeError as exc:
            assert "must be str" in str(exc)
        else:
            raise AssertionError("bytes were accepted")
