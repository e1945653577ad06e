"""``gotools-agent`` as a process: start-up line, SIGTERM, a port in use, settings."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from gotools_compat.agent.__main__ import BOUNDS, limits, settings

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

GO_METRICS = (Path(__file__).parent / "fixtures" / "go-ocagent-v1-metrics.json").read_bytes()


def run(args: List[str]) -> "subprocess.Popen[str]":
    return subprocess.Popen([sys.executable, "-m", "gotools_compat.agent", *args],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: "subprocess.Popen[str]") -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "the agent never listened"
            time.sleep(0.02)


def test_serves_then_stops_cleanly_on_sigterm() -> None:
    listen, prom = free_port(), free_port()
    proc = run(["--listen", "127.0.0.1:%d" % listen, "--prometheus", "127.0.0.1:%d" % prom])
    try:
        wait_listening(prom, proc)
        conn = http.client.HTTPConnection("127.0.0.1", listen, timeout=10)
        conn.request("POST", "/v1/metrics", body=GO_METRICS,
                     headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", prom, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        assert 'promdemo_started_total{vendor="otc",job="gopls",instance="vm:2411"} 19' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        err = stopped(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "OpenCensus gRPC and HTTP/JSON on 127.0.0.1:%d" % listen in err
    assert "http://127.0.0.1:%d/metrics" % prom in err
    assert "SIGTERM received, stopping" in err
    assert "new sender job='gopls' instance='vm:2411'" in err


def stopped(proc: "subprocess.Popen[str]") -> str:
    """Its stderr once it exits; killed (and the test failed) if it does not within 30 s."""
    try:
        return proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        err = proc.communicate()[1]
        raise AssertionError("the agent did not stop on SIGTERM:\n" + err) from None


def test_a_burst_of_signals_stops_it_once_and_cleanly() -> None:
    # A handler that logs can be entered again while it writes to stderr
    # ("reentrant call inside BufferedWriter"): its exception was raised
    # instead of the stop, and the agent ran on.
    prom = free_port()
    proc = run(["--listen", "127.0.0.1:0", "--prometheus", "127.0.0.1:%d" % prom])
    try:
        wait_listening(prom, proc)
        for _ in range(200):
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.0005)
    finally:
        err = stopped(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Logging error" not in err
    assert err.count("SIGTERM received, stopping") == 1, err


def test_a_port_in_use_is_a_clear_error_and_nonzero_exit() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = run(["--listen", "127.0.0.1:%d" % port, "--prometheus", "127.0.0.1:0"])
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "cannot listen on 127.0.0.1:%d: Address already in use" % port in err
    assert "Traceback" not in err


def test_help_documents_every_option() -> None:
    out = subprocess.run([sys.executable, "-m", "gotools_compat.agent", "--help"],
                         capture_output=True, text=True, timeout=30).stdout
    for option in ("--listen", "--prometheus", "--namespace", "--const-label",
                   "--no-const-labels", "--no-target-labels", "--expire",
                   "--max-message-bytes", "--max-spans", "--zipkin", "--config",
                   "--log-level", "GOTOOLS_AGENT_LISTEN", "--otlp", "GOTOOLS_AGENT_OTLP",
                   "gotools_compat[otel]"):
        assert option in out


def test_defaults_follow_the_tutorial_agent() -> None:
    s = settings([], environ={})
    assert (s["listen"], s["prometheus"], s["namespace"], s["const_labels"]) == (
        "127.0.0.1:55678", "127.0.0.1:8844", "promdemo", {"vendor": "otc"})
    assert s["target_labels"] is True and s["expire"] == 300.0


def test_options_over_environment_over_config_file(tmp_path: Path) -> None:
    if sys.version_info < (3, 11):
        pytest.importorskip("tomli")
    config = tmp_path / "agent.toml"
    config.write_text('namespace = "fromfile"\nexpire = 10\nconst_labels = { a = "1" }\n'
                      'listen = "127.0.0.1:1"\n')
    env = {"GOTOOLS_AGENT_LISTEN": "127.0.0.1:2", "GOTOOLS_AGENT_TARGET_LABELS": "0",
           "GOTOOLS_AGENT_EXPIRE": "20"}
    s = settings(["--config", str(config), "--expire", "30", "--const-label", "b=2",
                  "--const-label", "c=x=y"], environ=env)
    assert s["namespace"] == "fromfile"
    assert s["listen"] == "127.0.0.1:2"
    assert s["target_labels"] is False
    assert s["expire"] == 30.0
    assert s["const_labels"] == {"b": "2", "c": "x=y"}
    assert settings(["--no-const-labels"], environ={})["const_labels"] == {}


def test_otlp_from_option_or_environment_and_checked() -> None:
    env = {"GOTOOLS_AGENT_OTLP": "http://127.0.0.1:1"}
    assert settings([], environ={})["otlp"] == ""
    assert settings([], environ=env)["otlp"] == "http://127.0.0.1:1"
    assert settings(["--otlp", "http://127.0.0.1:4318"], environ=env)["otlp"] == \
        "http://127.0.0.1:4318"
    with pytest.raises(ValueError, match="expected a URL"):
        settings(["--otlp", "127.0.0.1:4318"], environ={})


def test_zipkin_is_checked_to_be_an_http_url() -> None:
    assert settings(["--zipkin", " http://127.0.0.1:9411/api/v2/spans"], environ={})[
        "zipkin"] == " http://127.0.0.1:9411/api/v2/spans"
    for bad in ("zipkin/api/v2/spans", "127.0.0.1:9411/api/v2/spans", "ftp://h/x", "http://"):
        with pytest.raises(ValueError, match=re.escape(
                "--zipkin %r: expected a URL such as http://127.0.0.1:9411/api/v2/spans" % bad)):
            settings(["--zipkin", bad], environ={})


def test_bad_settings_exit_2_with_a_message() -> None:
    result = subprocess.run([sys.executable, "-m", "gotools_compat.agent", "--listen", "nope"],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "GOTOOLS_AGENT_PROMETHEUS": "127.0.0.1:0"})
    assert result.returncode == 2
    assert "address 'nope': expected host:port" in result.stderr


def test_every_bound_is_an_option_an_environment_variable_and_a_config_key(
        tmp_path: Path) -> None:
    if sys.version_info < (3, 11):
        pytest.importorskip("tomli")
    out = subprocess.run([sys.executable, "-m", "gotools_compat.agent", "--help"],
                         capture_output=True, text=True, timeout=30).stdout
    assert 'gotools_agent_limit_hits_total{limit="<setting>"}' in out
    config = tmp_path / "agent.toml"
    config.write_text("max_connections = 7\nheader_timeout = 1.5\nmax_streams = 9\n")
    for name, kind, default, _ in BOUNDS:
        assert "--" + name.replace("_", "-") in out
        assert settings([], environ={})[name] == default
        value = kind(default * 2 + 3)
        assert settings(["--" + name.replace("_", "-"), str(value)], environ={})[name] == value
        assert settings([], environ={"GOTOOLS_AGENT_" + name.upper(): str(value)})[name] == value
    s = settings(["--config", str(config), "--max-streams", "11"], environ={})
    assert (s["max_connections"], s["header_timeout"], s["max_streams"]) == (7, 1.5, 11)
    assert limits(s).header_timeout == 1.5 and limits(s).max_connections == 7


def test_a_bad_bound_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="header_timeout must be a positive number"):
        settings(["--header-timeout", "0"], environ={})
    with pytest.raises(ValueError, match="max_connections: not a number: 'many'"):
        settings([], environ={"GOTOOLS_AGENT_MAX_CONNECTIONS": "many"})


@pytest.mark.parametrize("option", ["--max-spans", "--max-span-bytes", "--max-bytes-per-span",
                                    "--max-tracez-spans"])
def test_a_span_bound_below_one_is_refused_not_clamped(option: str) -> None:
    result = subprocess.run([sys.executable, "-m", "gotools_compat.agent", option, "-1",
                             "--listen", "127.0.0.1:0", "--prometheus", ""],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr == "gotools-agent: %s must be an int >= 1, not -1\n" % (
        option[2:].replace("-", "_"))
