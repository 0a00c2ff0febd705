"""The reconcile job finds a VM deleted behind its back and one nobody owns."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET

import libvirt

from clubstack.compute import capsuls, reconcile
from clubstack.compute.models import Capsul, Finding
from clubstack.core.accounts.models import User
from clubstack.core.db import db
from tests.conftest import login, make_admin, message_text, outbox_messages

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"


def foreign_xml(name: str) -> str:
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = "32"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64").text = "hvm"
    return ET.tostring(dom, encoding="unicode")


def test_reconcile_finds_vanished_and_foreign_vms(compute_app, hv, ledger):
    app = compute_app
    make_admin(app, "root@example.org")
    # log in first: the login helper reads the newest mail in the outbox
    admin = app.test_client()
    login(admin, app, "root@example.org")
    foreign = hv.conn.defineXML(foreign_xml("someone-elses-vm"))
    try:
        with app.app_context():
            session = db.session()
            user = User(email="dan@example.org")
            session.add(user)
            session.commit()
            ledger.credit(user.id, 10_000)
            kept = capsuls.request_capsul(
                session,
                user.id,
                plan="f1-xs",
                image="tiny",
                name="kept",
                keys=[KEY],
                min_credit_hours=1,
                max_capsuls=5,
            )
            lost = capsuls.request_capsul(
                session,
                user.id,
                plan="f1-xs",
                image="tiny",
                name="lost",
                keys=[KEY],
                min_credit_hours=1,
                max_capsuls=5,
            )
            session.commit()
            ours = {kept.domain_name, lost.domain_name, "someone-elses-vm"}
            for c in (kept, lost):
                capsuls.provision(session, c.id)
            session.commit()
            # an operator deletes one VM with virsh, behind the database's back
            dom = hv.lookup(lost.domain_name)
            dom.destroy()
            dom.undefine()
            # and the other one stops without the database knowing
            hv.force_off(kept.domain_name)

            report = reconcile.reconcile(session)
            session.commit()
            # only what this test made: the shared libvirtd may hold other checkouts' VMs
            kinds = report.kinds() & {
                (k, n) for k in ("vanished", "foreign", "drift", "orphan") for n in ours
            }
            assert ("vanished", lost.domain_name) in kinds
            assert ("foreign", "someone-elses-vm") in kinds
            assert ("drift", kept.domain_name) in kinds
            assert session.get(Capsul, kept.id).state == "stopped"  # drift fixed
            assert session.get(Capsul, lost.id).state == "missing"
            lost_id, kept_id = lost.id, kept.id

            # findings are not mailed twice
            mails = [
                m
                for m in outbox_messages(app)
                if m["To"] == "root@example.org" and m["Subject"].startswith("Compute")
            ]
            assert len(mails) == 1, [(m["Subject"], message_text(m)) for m in mails]
            text = message_text(mails[0])
            assert lost.domain_name in text and "someone-elses-vm" in text
            reconcile.reconcile(session)
            session.commit()
            assert len([m for m in outbox_messages(app) if m["Subject"].startswith("Compute")]) == 1

        # the admin page shows them
        html = admin.get("/compute/admin").get_data(as_text=True)
        assert "someone-elses-vm" in html and "vanished" in html

        # once the foreign VM is gone and the lost capsul destroyed, all is in sync again
        foreign.undefine()
        foreign = None
        with app.app_context():
            session = db.session()
            capsuls.destroy(session, session.get(Capsul, lost_id))
            capsuls.destroy(session, session.get(Capsul, kept_id))
            session.commit()
            report = reconcile.reconcile(session)
            session.commit()
            assert [f for f in report.findings if f.domain_name in ours] == []
            open_findings = session.query(Finding).filter(Finding.resolved_at.is_(None)).all()
            assert [f.domain_name for f in open_findings if f.domain_name in ours] == []
        html = admin.get("/compute/admin").get_data(as_text=True)
        assert "someone-elses-vm" not in html
    finally:
        if foreign is not None:
            with contextlib.suppress(libvirt.libvirtError):
                foreign.undefine()
