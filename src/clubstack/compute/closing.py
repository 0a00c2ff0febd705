"""What deleting an account means for compute: its capsuls are destroyed (after charging the
last hours), its SSH keys deleted; the destroyed capsuls' rows stay, like the ledger entries
that name them."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from clubstack.compute import capsuls, metering
from clubstack.compute.errors import HostDownError, HypervisorError
from clubstack.compute.models import SshKey
from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.errors import Unavailable


def destroy_member_capsuls(session: Session, user: User) -> None:
    """Destroy every live capsul of `user`, each committed on its own.

    A VM on a libvirt host cannot be part of a database transaction, so this runs before the
    account is touched and is safe to repeat (`capsuls.destroy` is): if a host cannot be
    reached, nothing of the account is deleted yet and the member can simply try again.
    """
    for capsul in capsuls.member_capsuls(session, user.id):
        try:
            metering.meter_capsul(session, capsul, utcnow())
            capsuls.destroy(session, capsul)
        except (HostDownError, HypervisorError) as error:
            session.rollback()
            raise Unavailable(
                f"Capsul {capsul.name} could not be destroyed ({error.message}). Nothing of "
                "your account was deleted; try again later."
            ) from None
        session.commit()


def forget_member(session: Session, user: User) -> None:
    session.execute(delete(SshKey).where(SshKey.user_id == user.id))
