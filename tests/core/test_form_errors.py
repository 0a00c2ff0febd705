"""The one form helper: an InputError becomes field messages and a rolled-back session."""

from __future__ import annotations

import pytest

from clubstack.core.errors import Forbidden, InputError
from clubstack.core.validation import form_errors


class Session:
    def __init__(self) -> None:
        self.rollbacks = 0

    def rollback(self) -> None:
        self.rollbacks += 1


def test_success_leaves_no_errors_and_the_session_alone():
    session = Session()
    with form_errors(session) as result:
        value = 42
    assert result.ok and result.fields == {} and value == 42 and session.rollbacks == 0


def test_an_input_error_becomes_field_messages_and_rolls_back():
    session = Session()
    with form_errors(session) as result:
        raise InputError(fields={"name": "is taken"})
    assert not result.ok and result.fields == {"name": "is taken"} and session.rollbacks == 1
    assert result.message == InputError.message


def test_an_error_naming_no_field_is_shown_under_the_given_one():
    with form_errors(field="text") as result:
        raise InputError("Nothing recognised.")
    assert result.fields == {"text": "Nothing recognised."}
    with form_errors() as result:
        raise InputError("Nothing recognised.")
    assert result.fields == {"form": "Nothing recognised."}


def test_other_errors_pass_through_to_the_error_pages():
    session = Session()
    with pytest.raises(Forbidden), form_errors(session):
        raise Forbidden()
    assert session.rollbacks == 0
