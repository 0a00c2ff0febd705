"""The Atom feed of publications and breaks, built with ElementTree (no string-built XML)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from datetime import datetime

from clubstack.contest.desk_models import Announcement
from clubstack.contest.models import Break, Challenge

ATOM = "http://www.w3.org/2005/Atom"


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def render(
    *,
    title: str,
    site: str,
    index_url: str,
    self_url: str,
    published: Sequence[Challenge],
    breaks: Sequence[Break],
    link: Callable[[str], str],
    announcements: Sequence[Announcement] = (),
    announcement_url: str = "",
) -> bytes:
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    entries: list[tuple[datetime, str, str, str, str]] = []
    for c in published:
        if c.published_at is not None:
            entries.append(
                (
                    c.published_at,
                    f"tag:{_host(site)},contest:published:{c.public_id}",
                    f"{c.name} published",
                    f"{c.owner.display_name} published the "
                    f"{c.kind} challenge {c.name} (performance "
                    f"{(c.performance or 0):.2f}).",
                    link(c.name),
                )
            )
    for b in breaks:
        entries.append(
            (
                b.created_at,
                f"tag:{_host(site)},contest:break:{b.id}",
                f"{b.challenge.name} broken by {b.user.display_name}",
                f"{b.user.display_name} broke {b.challenge.name} "
                f"({b.strawberries_at_break:.3g} strawberries at that moment).",
                link(b.challenge.name),
            )
        )
    for a in announcements:
        entries.append(
            (
                a.created_at,
                f"tag:{_host(site)},contest:announcement:{a.public_id}",
                f"Announcement: {a.title}",
                a.body,
                announcement_url or index_url,
            )
        )
    entries.sort(key=lambda e: e[0], reverse=True)
    updated = entries[0][0] if entries else datetime(2000, 1, 1)
    ET.SubElement(root, f"{{{ATOM}}}title").text = title
    ET.SubElement(root, f"{{{ATOM}}}id").text = index_url
    ET.SubElement(root, f"{{{ATOM}}}updated").text = _stamp(updated)
    ET.SubElement(root, f"{{{ATOM}}}link", {"rel": "self", "href": self_url})
    ET.SubElement(root, f"{{{ATOM}}}link", {"rel": "alternate", "href": index_url})
    author = ET.SubElement(root, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = title
    for at, entry_id, entry_title, summary, href in entries[:100]:
        entry = ET.SubElement(root, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}title").text = entry_title
        ET.SubElement(entry, f"{{{ATOM}}}id").text = entry_id
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = _stamp(at)
        ET.SubElement(entry, f"{{{ATOM}}}link", {"href": href})
        ET.SubElement(entry, f"{{{ATOM}}}summary").text = summary
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _host(site: str) -> str:
    return site.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "localhost"
