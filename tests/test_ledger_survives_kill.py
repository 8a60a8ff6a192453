"""The credits ledger survives a killed server process (issue: "the ledger intact after the server
process is killed and restarted"). Real processes, a real SIGKILL, HTTP only."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.test_mock_cli import START_TIMEOUT_S, _free_port

AUTH = {"Authorization": "Bearer sk-test"}


def _start(config: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "mock_server", "serve", "--config", str(config),
                                "--port", str(port), "--no-latency", "--log-level", "warning"])
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=AUTH, timeout=1.0)
            return process
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("mock-server did not start") from None
            time.sleep(0.1)


def test_balance_and_records_survive_sigkill(tmp_path: Path) -> None:
    config = tmp_path / "mock.yaml"
    config.write_text(yaml.safe_dump({"keys": [{"key": "sk-test", "credits": 1000}],
                                      "ledger": {"path": str(tmp_path / "ledger.sqlite")}}))
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api/v1/multimodal"
    process = _start(config, port)
    try:
        answers = [httpx.post(f"{url}/tts", json={"text": f"take {i}"}, headers=AUTH, timeout=30) for i in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert answers[-1].json()["credits_remaining"] == 1000 - 3 * 14
    finally:
        process.send_signal(signal.SIGKILL)  # no shutdown, no flush: what a crash does
        process.wait(timeout=10)
    process = _start(config, port)
    try:
        balance = httpx.get(f"http://127.0.0.1:{port}/api/v1/managed/usage", headers=AUTH, timeout=30).json()
        assert balance["credits_remaining"] == 1000 - 3 * 14
        records = httpx.get(f"{url}/usage", headers=AUTH, timeout=30).json()
        assert records["total"] == 3
        assert {r["usage_id"] for r in records["items"]} == {a.json()["usage_id"] for a in answers}
        again = httpx.post(f"{url}/tts", json={"text": "after the crash"}, headers=AUTH, timeout=30)
        assert again.json()["credits_remaining"] == 1000 - 4 * 14
    finally:
        process.terminate()
        process.wait(timeout=10)
