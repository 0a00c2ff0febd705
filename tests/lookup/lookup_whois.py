"""Local WHOIS servers (RFC 3912: one line in, text out, connection closed) for the tests:
IANA, a registry and a registrar, each on its own loopback port, answering from a table."""

from __future__ import annotations

import socketserver
import threading
from datetime import UTC, datetime, timedelta


class WhoisServer:
    def __init__(self, answers: dict[str, str], default: str = "") -> None:
        self.answers = answers
        self.default = default
        self.questions: list[str] = []
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(1024).decode("ascii", "replace").strip()
                server.questions.append(line)
                answer = server.answers.get(line.lower(), server.default)
                self.wfile.write(answer.replace("\n", "\r\n").encode())

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.tcp.daemon_threads = True
        self.port = self.tcp.server_address[1]
        threading.Thread(target=self.tcp.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.tcp.shutdown()
        self.tcp.server_close()


def iana_tld(tld: str, server: str | None) -> str:
    refer = f"refer:        {server}\n\n" if server else "\n"
    whois_line = f"whois:        {server}\n" if server else ""
    return (
        "% IANA WHOIS server\n% for more information on IANA, visit http://www.iana.org\n"
        "% This query returned 1 object\n\n"
        f"{refer}domain:       {tld.upper()}\n\norganisation: Registry of .{tld}\n"
        f"address:      Somewhere\n\n{whois_line}\nstatus:       ACTIVE\n\n"
        "created:      1986-11-05\nsource:       IANA\n"
    )


def denic(domain: str) -> str:
    return (
        f"Domain: {domain}\nNserver: ns1.{domain}\nNserver: ns2.{domain}\n"
        "Status: connect\nChanged: 2025-03-04T10:00:00+01:00\n"
    )


def verisign(domain: str, created: datetime, registrar_server: str) -> str:
    expires = datetime.now(UTC) + timedelta(days=300)
    return (
        f"   Domain Name: {domain.upper()}\n"
        "   Registry Domain ID: 2918_DOMAIN_COM-VRSN\n"
        f"   Registrar WHOIS Server: {registrar_server}\n"
        "   Registrar URL: http://www.example-registrar.com\n"
        f"   Updated Date: {created:%Y-%m-%dT%H:%M:%SZ}\n"
        f"   Creation Date: {created:%Y-%m-%dT%H:%M:%SZ}\n"
        f"   Registry Expiry Date: {expires:%Y-%m-%dT%H:%M:%SZ}\n"
        "   Registrar: Example Registrar, LLC\n"
        "   Registrar IANA ID: 9999\n"
        "   Domain Status: clientTransferProhibited "
        "https://icann.org/epp#clientTransferProhibited\n"
        f"   Name Server: NS1.{domain.upper()}\n"
        "   DNSSEC: unsigned\n"
        ">>> Last update of whois database: 2026-12-05T10:00:00Z <<<\n"
    )


def registrar(domain: str, created: datetime) -> str:
    return (
        f"Domain Name: {domain}\n"
        f"Creation Date: {created:%Y-%m-%dT%H:%M:%SZ}\n"
        "Registrar: Example Registrar, LLC (retail brand)\n"
        "Domain Status: clientHold https://icann.org/epp#clientHold\n"
        f"Name Server: ns1.{domain}\nName Server: ns2.{domain}\n"
        "Registrant Organization: Fresh Shop Ltd\n"
    )


def fixtures() -> tuple[WhoisServer, WhoisServer, WhoisServer]:
    """(iana, registry, registrar) with their tables filled."""
    now = datetime.now(UTC)
    iana = WhoisServer(
        {
            "de": iana_tld("de", "whois.denic.de"),
            "com": iana_tld("com", "whois.verisign-grs.com"),
            "coop": iana_tld("coop", None),
        },
        default="% This query returned 0 objects.\n",
    )
    registry = WhoisServer(
        {
            "beispiel-gmbh.de": denic("beispiel-gmbh.de"),
            "frei.de": "Domain: frei.de\nStatus: free\n",
            "thin-shop.com": verisign(
                "thin-shop.com", now - timedelta(days=2), "whois.example-registrar.com"
            ),
            "old-thin.com": verisign(
                "old-thin.com", now - timedelta(days=3000), "whois.unreachable-registrar.com"
            ),
        },
        default='No match for "THAT".\n>>> Last update of whois database <<<\n',
    )
    registrar_server = WhoisServer(
        {"thin-shop.com": registrar("thin-shop.com", now - timedelta(days=2))}
    )
    return iana, registry, registrar_server
