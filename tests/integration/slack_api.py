"""A stand-in for Slack's Web API for tests: listens on 127.0.0.1 (free port), answers every method ``{"ok": true}``
as Slack does, keeps every call. Point a ``slack`` connection's ``base_url`` extra at ``sink.base_url`` and Airflow's
SlackNotifier (through slack_sdk's WebClient) posts to it over HTTP."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class SlackCall:
    method: str  # e.g. chat.postMessage
    authorization: str
    body: dict[str, Any]


class SlackSink:
    """``with SlackSink() as sink:`` serves on ``sink.base_url``; ``sink.calls`` is what arrived, in order."""

    def __init__(self) -> None:
        self.calls: list[SlackCall] = []
        sink = self

        class Api(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if "json" in (self.headers.get("Content-Type") or "") else {}
                method = self.path.rsplit("/", 1)[-1]
                sink.calls.append(SlackCall(method, self.headers.get("Authorization", ""), body))
                answer = json.dumps({"ok": True, "channel": body.get("channel"), "ts": "1.0"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:  # quiet: the calls are asserted, not logged
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, name="slack-sink", daemon=True)

    def __enter__(self) -> SlackSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
