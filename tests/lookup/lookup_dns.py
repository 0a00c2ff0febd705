"""A real authoritative DNS server on loopback (dnslib, in-process) serving fixture zones."""

# Zone file lines are as long as the DNS records they hold.
# ruff: noqa: E501
from __future__ import annotations

import base64
import threading
import time
from collections import defaultdict

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import QTYPE, RCODE, RR, DNSLabel, DNSRecord
from dnslib.server import DNSLogger, DNSServer, TCPServer, UDPServer


def _dkim_txt(bits: int) -> str:
    """A DKIM TXT record for a fresh RSA key, split into 255-byte strings."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    return " ".join(f'"{record[i : i + 200]}"' for i in range(0, len(record), 200))


class ZoneResolver:
    """Answers from a zone file text. ``delays`` maps a name suffix to seconds of sleep."""

    def __init__(self, zone: str, delay: float = 0.0, delays: dict[str, float] | None = None):
        self.records: dict[tuple[DNSLabel, int], list[RR]] = defaultdict(list)
        self.names: set[DNSLabel] = set()
        self.delay = delay
        self.delays = {DNSLabel(k): v for k, v in (delays or {}).items()}
        self.queries = 0
        self._lock = threading.Lock()
        for rr in RR.fromZone(zone):
            self.records[(rr.rname, rr.rtype)].append(rr)
            # every name and every parent name exists (empty non-terminals)
            label = rr.rname
            while len(label.label) > 0:
                self.names.add(label)
                label = DNSLabel(label.label[1:])

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        with self._lock:
            self.queries += 1
        qname = request.q.qname
        qtype = request.q.qtype
        delay = self.delay
        for suffix, seconds in self.delays.items():
            if qname.matchSuffix(suffix):
                delay = max(delay, seconds)
        if delay:
            time.sleep(delay)
        reply = request.reply()
        reply.header.aa = 1
        if qname not in self.names:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        answers = self.records.get((qname, qtype), [])
        if not answers and qtype != QTYPE.CNAME:
            cname = self.records.get((qname, QTYPE.CNAME), [])
            if cname:
                reply.add_answer(*cname)
                target = cname[0].rdata.label
                answers = self.records.get((target, qtype), [])
        for rr in answers:
            reply.add_answer(rr)
        return reply


class LocalDNS:
    """UDP and TCP on the same loopback port, in background threads."""

    def __init__(self, resolver: ZoneResolver, address: str = "127.0.0.1") -> None:
        self.resolver = resolver
        logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        for attempt in range(20):
            # UDP gets a free port from the kernel; TCP must take the same number, which
            # another process may hold: then try another port.
            self.udp = DNSServer(resolver, address=address, port=0, logger=logger, server=UDPServer)
            self.port = self.udp.server.server_address[1]
            try:
                self.tcp = DNSServer(
                    resolver, address=address, port=self.port, logger=logger, server=TCPServer
                )
                break
            except OSError:
                self.udp.server.server_close()
                if attempt == 19:
                    raise
        self.address = address

    @property
    def nameserver(self) -> str:
        return f"{self.address}:{self.port}"

    def start(self) -> LocalDNS:
        self.udp.start_thread()
        self.tcp.start_thread()
        return self

    def stop(self) -> None:
        self.udp.stop()
        self.tcp.stop()
        self.udp.server.server_close()
        self.tcp.server.server_close()


FIXTURE_ZONE_TEMPLATE = r"""
$TTL 300
good.example.com.        IN SOA   ns1.good.example.com. hostmaster.good.example.com. 1 7200 3600 1209600 300
good.example.com.        IN NS    ns1.good.example.com.
good.example.com.        IN A     192.0.2.10
good.example.com.        IN AAAA  2001:db8::10
good.example.com.        IN MX    10 mx1.good.example.com.
good.example.com.        IN CAA   0 issue "letsencrypt.org"
good.example.com.        IN TXT   "v=spf1 ip4:192.0.2.0/24 include:_spf.good.example.com -all"
good.example.com.        IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==
good.example.com.        IN DS    2371 13 2 1F987CC6583E92DF0890718C42EB2E0838CF1A5D9E5D4F1E5A1C4D8B5B3F6A7C
_spf.good.example.com.   IN TXT   "v=spf1 ip4:198.51.100.0/24 ~all"
mx1.good.example.com.    IN A     192.0.2.25
ns1.good.example.com.    IN A     192.0.2.53
_dmarc.good.example.com. IN TXT   "v=DMARC1; p=reject; pct=100; rua=mailto:dmarc@good.example.com"
_mta-sts.good.example.com. IN TXT "v=STSv1; id=20240101T000000"
mta-sts.good.example.com. IN A    93.184.215.14
_smtp._tls.good.example.com. IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@good.example.com"
default._bimi.good.example.com. IN TXT "v=BIMI1; l=https://good.example.com/logo.svg"
sel1._domainkey.good.example.com. IN TXT {dkim_rsa}
weak._domainkey.good.example.com. IN TXT {dkim_weak}
revoked._domainkey.good.example.com. IN TXT "v=DKIM1; p="

plusall.example.com.     IN A     192.0.2.20
plusall.example.com.     IN TXT   "v=spf1 +all"
_dmarc.plusall.example.com. IN TXT "v=DMARC1; p=none"

qall.example.com.        IN A     192.0.2.21
qall.example.com.        IN TXT   "v=spf1 a mx ?all"
qall.example.com.        IN MX    10 qall.example.com.
_dmarc.qall.example.com. IN TXT   "v=DMARC1; p=quarantine; pct=20"

nospf.example.com.       IN A     192.0.2.22
nospf.example.com.       IN TXT   "google-site-verification=abc"

toomany.example.com.     IN A     192.0.2.23
toomany.example.com.     IN TXT   "v=spf1 include:i1.example.com include:i2.example.com include:i3.example.com include:i4.example.com include:i5.example.com include:i6.example.com -all"
i1.example.com.          IN TXT   "v=spf1 a mx -all"
i2.example.com.          IN TXT   "v=spf1 a mx -all"
i3.example.com.          IN TXT   "v=spf1 a mx -all"
i4.example.com.          IN TXT   "v=spf1 a mx -all"
i5.example.com.          IN TXT   "v=spf1 a mx -all"
i6.example.com.          IN TXT   "v=spf1 a mx -all"
_dmarc.toomany.example.com. IN TXT "v=DMARC1; p=reject"

slow.example.com.        IN A     192.0.2.30
rebind.example.com.      IN A     127.0.0.1
rebind.example.com.      IN TXT   "v=spf1 -all"
_mta-sts.rebind.example.com. IN TXT "v=STSv1; id=1"
mta-sts.rebind.example.com. IN A  127.0.0.1

intranet.corp.           IN A     10.1.2.3
db01.internal.           IN A     10.1.2.4

10.2.0.192.in-addr.arpa. IN PTR   good.example.com.

4.101.220.185.origin.asn.cymru.com. IN TXT "60729 | 185.220.101.0/24 | DE | ripencc | 2016-04-28"
60729.asn.cymru.com.     IN TXT   "60729 | DE | ripencc | 2016-04-28 | ZWIEBELFREUNDE, DE"
AS60729.asn.cymru.com.   IN TXT   "60729 | DE | ripencc | 2016-04-28 | ZWIEBELFREUNDE, DE"
1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.origin6.asn.cymru.com. IN TXT "64500 | 2001:db8::/32 | ZZ | test | 2020-01-01"
AS64500.asn.cymru.com.   IN TXT   "64500 | ZZ | test | 2020-01-01 | DOCUMENTATION-AS, ZZ"
"""

FIXTURE_ZONE = FIXTURE_ZONE_TEMPLATE.replace("{dkim_rsa}", _dkim_txt(2048)).replace(
    "{dkim_weak}", _dkim_txt(1024)
)
