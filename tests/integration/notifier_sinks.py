"""Real servers for the notifiers' tests, each on a free 127.0.0.1 port, keeping what arrives:

- ``SmtpSink`` speaks enough SMTP for smtplib and keeps every mail;
- ``SlackSink`` stands in for Slack's Web API: answers every method ``{"ok": true}`` as Slack does and keeps every
  call. Point a ``slack`` connection's ``base_url`` extra at ``sink.base_url`` and Airflow's SlackNotifier (through
  slack_sdk's WebClient) posts to it over HTTP.
"""

from __future__ import annotations

import email
import email.policy
import json
import socketserver
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class _Serving:
    """A socketserver on a free 127.0.0.1 port, served from a thread inside ``with``."""

    def __init__(self, server: socketserver.TCPServer, name: str) -> None:
        self.server = server
        self.server.daemon_threads = True  # type: ignore[attr-defined]
        self.port: int = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: tuple[str, ...]  # the envelope's RCPT TO
    message: EmailMessage

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""


class SmtpSink(_Serving):
    """``with SmtpSink() as sink:`` serves on ``sink.port``; ``sink.mails`` is what arrived, in order."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        sink = self

        class Session(socketserver.StreamRequestHandler):
            def reply(self, text: str) -> None:
                self.wfile.write(text.encode() + b"\r\n")

            def handle(self) -> None:
                self.reply("220 127.0.0.1 test SMTP")
                sender, recipients = "", []
                while line := self.rfile.readline():
                    command = line.decode().rstrip("\r\n")
                    verb = command.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.reply("250-127.0.0.1\r\n250 8BITMIME")
                    elif verb in ("HELO", "NOOP"):
                        self.reply("250 OK")
                    elif command.upper().startswith("MAIL FROM:"):
                        sender = command[10:].strip().strip("<>")
                        self.reply("250 OK")
                    elif command.upper().startswith("RCPT TO:"):
                        recipients.append(command[8:].strip().strip("<>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 End data with <CR><LF>.<CR><LF>")
                        data = b""
                        while (part := self.rfile.readline()) not in (b".\r\n", b""):
                            data += part[1:] if part.startswith(b"..") else part  # dot-unstuffing
                        message = email.message_from_bytes(data, policy=email.policy.default)
                        sink.mails.append(Mail(sender, tuple(recipients), message))  # type: ignore[arg-type]
                        sender, recipients = "", []
                        self.reply("250 OK: queued")
                    elif verb == "RSET":
                        sender, recipients = "", []
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 Bye")
                        return
                    else:
                        self.reply("502 Command not implemented")

        super().__init__(socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session), "smtp-sink")


@dataclass(frozen=True)
class SlackCall:
    method: str  # e.g. chat.postMessage
    authorization: str
    body: dict[str, Any]


class SlackSink(_Serving):
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

        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), Api), "slack-sink")
        self.base_url = f"http://127.0.0.1:{self.port}/api/"
