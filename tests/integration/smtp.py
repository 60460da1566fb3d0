"""A real SMTP server for tests: listens on 127.0.0.1 (free port), speaks enough SMTP for smtplib, keeps every mail."""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
from dataclasses import dataclass
from email.message import EmailMessage


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: tuple[str, ...]  # the envelope's RCPT TO
    message: EmailMessage

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""


class SmtpSink:
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

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="smtp-sink", daemon=True)

    def __enter__(self) -> SmtpSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
