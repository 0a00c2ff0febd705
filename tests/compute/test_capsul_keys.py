"""The keys a new capsul gets: the member's own chosen keys and those pasted, each once; the
pasted ones are kept on the account. Plans and images offered are the active ones."""

from __future__ import annotations

from typing import Any

import pytest

from clubstack.compute import capsuls
from clubstack.compute.errors import InputError
from clubstack.compute.models import Image, Plan
from clubstack.core.accounts.models import User
from clubstack.core.db import db

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ann@laptop"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"


@pytest.fixture
def session(make_app: Any) -> Any:
    app = make_app()
    with app.app_context():
        yield db.session()


def _member(session: Any, email: str) -> int:
    user = User(email=email)
    session.add(user)
    session.flush()
    return user.id


def test_chosen_and_pasted_keys_go_in_once_and_only_own_keys_are_chosen(session: Any) -> None:
    ann, bob = _member(session, "ann@example.org"), _member(session, "bob@example.org")
    saved = capsuls.add_ssh_key(session, ann, "laptop", KEY)
    theirs = capsuls.add_ssh_key(session, bob, "", OTHER)
    again = KEY.rsplit(" ", 1)[0] + " ann@other"  # the same key, another comment
    assert capsuls.keys_for_capsul(session, ann, [saved.id], [again, OTHER]) == [KEY, OTHER]
    with pytest.raises(InputError) as refused:
        capsuls.keys_for_capsul(session, ann, [theirs.id], [])
    assert "ssh_key_ids" in refused.value.fields


def test_pasted_keys_are_kept_once_on_the_account(session: Any) -> None:
    ann = _member(session, "ann@example.org")
    capsuls.add_ssh_key(session, ann, "laptop", KEY)
    capsuls.keep_pasted_keys(session, ann, [KEY.rsplit(" ", 1)[0] + " other", OTHER, OTHER])
    assert sorted(k.public_key for k in capsuls.ssh_keys(session, ann)) == sorted([KEY, OTHER])


def test_only_active_plans_and_images_are_offered(session: Any) -> None:
    for name, price, active in (("big", 900, True), ("small", 300, True), ("old", 100, False)):
        session.add(
            Plan(
                name=name,
                vcpus=1,
                memory_mib=512,
                disk_gib=5,
                price_month_cents=price,
                active=active,
            )
        )
    for name, active in (("debian", True), ("alpine", True), ("centos", False)):
        session.add(Image(name=name, title=name, path=f"/images/{name}.qcow2", active=active))
    session.flush()
    assert [p.name for p in capsuls.active_plans(session)] == ["small", "big"]
    assert [i.name for i in capsuls.active_images(session)] == ["alpine", "debian"]
