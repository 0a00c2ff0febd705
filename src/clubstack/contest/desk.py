"""The organiser's desk: rulings, withdrawn breaks, announcements, clarifications, the
scoreboard freeze and what the public sees (the board), and rejudges.

Plain functions over a database session, like challenges.py; no Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clubstack.contest import challenges, chart, judge, scoring
from clubstack.contest.desk_models import (
    RULINGS,
    Announcement,
    Clarification,
    DeskAction,
    DeskState,
    Rejudge,
    RejudgeItem,
    Ruling,
)
from clubstack.contest.errors import ContestError
from clubstack.contest.kinds import KINDS, get_kind
from clubstack.contest.models import Break, Challenge
from clubstack.contest.settings import ContestSettings
from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.errors import InputError, NotFound

REJUDGEABLE = ("published", "failed")  # a queued challenge is being judged already


class DeskRefused(ContestError):
    """An organiser's action that cannot be done in the contest's present state."""

    status = 409
    code = "desk_refused"


def log_action(
    session: Session,
    action: str,
    by: User | None,
    *,
    challenge: Challenge | None = None,
    subject: str | None = None,
    reason: str = "",
    public: bool = False,
    now: datetime | None = None,
) -> DeskAction:
    entry = DeskAction(
        action=action,
        by_user_id=by.id if by else None,
        challenge_id=challenge.id if challenge else None,
        challenge_name=challenge.name if challenge else None,
        subject=subject,
        reason=reason[:500],
        public=public,
        created_at=now or utcnow(),
    )
    session.add(entry)
    return entry


def actions(
    session: Session, *, public_only: bool, challenge_id: int | None = None, limit: int = 200
) -> list[DeskAction]:
    query = select(DeskAction).order_by(DeskAction.created_at.desc(), DeskAction.id.desc())
    if public_only:
        query = query.where(DeskAction.public.is_(True))
    if challenge_id is not None:
        query = query.where(DeskAction.challenge_id == challenge_id)
    return list(session.scalars(query.limit(limit)))


# ---- rulings: hide or disqualify a challenge -----------------------------------------------


def _reason(text: str) -> str:
    reason = " ".join(text.split())
    if not reason:
        raise InputError(fields={"reason": "Give the reason; it is shown publicly."})
    return reason[:500]


def ruling_of(session: Session, challenge_id: int) -> Ruling | None:
    return session.scalar(select(Ruling).where(Ruling.challenge_id == challenge_id))


def rulings(session: Session) -> dict[int, Ruling]:
    return {r.challenge_id: r for r in session.scalars(select(Ruling))}


def rule(
    session: Session,
    challenge: Challenge,
    ruling: str,
    reason: str,
    by: User,
    settings: ContestSettings,
    now: datetime | None = None,
) -> Ruling:
    """Hide or disqualify a challenge (or change one ruling into the other)."""
    if ruling not in RULINGS:
        raise InputError(fields={"ruling": "Choose hidden or disqualified."})
    text = _reason(reason)
    now = now or utcnow()
    found = ruling_of(session, challenge.id)
    if found is None:
        found = Ruling(
            challenge_id=challenge.id, ruling=ruling, reason=text, by_user_id=by.id, created_at=now
        )
        session.add(found)
    else:
        found.ruling, found.reason, found.by_user_id, found.created_at = ruling, text, by.id, now
    log_action(session, ruling, by, challenge=challenge, reason=text, public=True, now=now)
    session.flush()
    challenges.recompute_scores(session, settings, now)
    return found


def reinstate(
    session: Session,
    challenge: Challenge,
    reason: str,
    by: User,
    settings: ContestSettings,
    now: datetime | None = None,
) -> None:
    found = ruling_of(session, challenge.id)
    if found is None:
        raise DeskRefused("this challenge is neither hidden nor disqualified")
    text = _reason(reason)
    session.delete(found)
    log_action(session, "reinstated", by, challenge=challenge, reason=text, public=True, now=now)
    session.flush()
    challenges.recompute_scores(session, settings, now)


def hidden_from(session: Session, challenge: Challenge, user: User | None) -> Ruling | None:
    """The ruling that hides this challenge from ``user`` (owner and organisers still see it)."""
    found = ruling_of(session, challenge.id)
    if found is None or found.ruling != "hidden":
        return None
    if user is not None and (user.is_admin or user.id == challenge.owner_id):
        return None
    return found


# ---- breaks ----------------------------------------------------------------------------------


def rescore_breaks(challenge: Challenge, settings: ContestSettings) -> None:
    """Recompute first_break_at and each break's strawberries from the challenge's performance.

    A break is worth the strawberries the challenge had at that moment; both change when a
    break is withdrawn (the next one becomes the first) or a rejudge changes the performance.
    """
    ordered = sorted(challenge.breaks, key=lambda b: b.created_at)
    challenge.first_break_at = ordered[0].created_at if ordered else None
    if challenge.published_at is None:
        return
    for item in ordered:
        item.strawberries_at_break = scoring.strawberries(
            challenge.performance or 0.0,
            challenge.published_at,
            item.created_at,
            challenge.first_break_at if item is not ordered[0] else None,
            settings.final_deadline,
        )


def withdraw_break(
    session: Session,
    found: Break,
    reason: str,
    by: User,
    settings: ContestSettings,
    now: datetime | None = None,
) -> None:
    text = _reason(reason)
    challenge = found.challenge
    log_action(
        session,
        "break_withdrawn",
        by,
        challenge=challenge,
        subject=found.user.display_name,
        reason=text,
        public=True,
        now=now,
    )
    challenge.breaks.remove(found)
    session.delete(found)
    session.flush()
    rescore_breaks(challenge, settings)
    challenges.recompute_scores(session, settings, now)


def get_break(session: Session, break_id: int) -> Break:
    found = session.get(Break, break_id)
    if found is None:
        raise NotFound("There is no such break.")
    return found


# ---- announcements ---------------------------------------------------------------------------


def announce(
    session: Session, title: str, body: str, by: User, now: datetime | None = None
) -> Announcement:
    title, body = " ".join(title.split()), body.strip()
    errors = {}
    if not title:
        errors["title"] = "Give a title."
    if not body:
        errors["body"] = "Write the announcement."
    if errors:
        raise InputError(fields=errors)
    item = Announcement(
        title=title[:200], body=body[:20_000], by_user_id=by.id, created_at=now or utcnow()
    )
    session.add(item)
    log_action(session, "announcement", by, subject=title[:64], now=now)
    session.flush()
    return item


def announcements(session: Session, limit: int = 50) -> list[Announcement]:
    return list(
        session.scalars(
            select(Announcement)
            .order_by(Announcement.created_at.desc(), Announcement.id.desc())
            .limit(limit)
        )
    )


# ---- clarifications --------------------------------------------------------------------------


def ask(
    session: Session,
    user: User,
    question: str,
    challenge_name: str | None = None,
    now: datetime | None = None,
) -> Clarification:
    text = question.strip()
    if not text:
        raise InputError(fields={"question": "Write your question."})
    challenge_id = None
    if challenge_name:
        found = session.scalar(select(Challenge).where(Challenge.name == challenge_name.strip()))
        if found is None or not challenges.can_see_source(found, user):
            raise InputError(fields={"challenge": "There is no challenge of that name."})
        challenge_id = found.id
    item = Clarification(
        asker_id=user.id,
        question=text[:5000],
        challenge_id=challenge_id,
        created_at=now or utcnow(),
    )
    session.add(item)
    session.flush()
    return item


def get_question(session: Session, public_id: str) -> Clarification:
    found = session.scalar(select(Clarification).where(Clarification.public_id == public_id))
    if found is None:
        raise NotFound("There is no such question.")
    return found


def answer(
    session: Session,
    item: Clarification,
    text: str,
    public: bool,
    by: User,
    now: datetime | None = None,
) -> None:
    reply = text.strip()
    if not reply:
        raise InputError(fields={"answer": "Write the answer."})
    item.answer, item.public = reply[:20_000], public
    item.answered_at, item.answered_by_id = now or utcnow(), by.id
    log_action(
        session,
        "answered",
        by,
        challenge=item.challenge,
        subject=item.asker.display_name,
        reason="public" if public else "private",
        now=now,
    )


def questions_for(session: Session, user: User | None) -> list[Clarification]:
    """What a member sees: their own questions and every public answer."""
    visible = (Clarification.public.is_(True)) & Clarification.answer.is_not(None)
    if user is not None:
        visible = visible | (Clarification.asker_id == user.id)
    return list(
        session.scalars(
            select(Clarification)
            .where(visible)
            .order_by(Clarification.created_at.desc())
            .limit(200)
        )
    )


def all_questions(session: Session) -> list[Clarification]:
    """For the organisers: unanswered first, oldest first among them."""
    rows = list(session.scalars(select(Clarification).order_by(Clarification.created_at)))
    return sorted(rows, key=lambda c: c.answer is not None)


def unanswered_count(session: Session) -> int:
    return (
        session.scalar(select(func.count(Clarification.id)).where(Clarification.answer.is_(None)))
        or 0
    )


# ---- the scoreboard freeze -------------------------------------------------------------------


@dataclass
class Freeze:
    at: datetime | None  # when the public board stops moving; None: never
    lifted: bool
    from_setting: bool

    def active(self, now: datetime) -> bool:
        return self.at is not None and not self.lifted and now >= self.at


def _state(session: Session, name: str) -> DeskState | None:
    return session.get(DeskState, name)


def _set_state(session: Session, name: str, value: str, by: User, now: datetime) -> None:
    row = _state(session, name)
    if row is None:
        session.add(DeskState(name=name, value=value, by_user_id=by.id, updated_at=now))
    else:
        row.value, row.by_user_id, row.updated_at = value, by.id, now


def freeze_state(session: Session, settings: ContestSettings) -> Freeze:
    at_row, lifted_row = _state(session, "freeze_at"), _state(session, "freeze_lifted")
    lifted = lifted_row is not None and lifted_row.value == "1"
    if at_row is not None:
        at = datetime.fromisoformat(at_row.value) if at_row.value else None
        return Freeze(at, lifted, from_setting=False)
    return Freeze(settings.scoreboard_freeze, lifted, from_setting=True)


def set_freeze(
    session: Session,
    at: datetime | None,
    by: User,
    settings: ContestSettings,
    now: datetime | None = None,
) -> None:
    """Freeze the public board at ``at`` (None: no freeze). The organisers still see it live."""
    now = now or utcnow()
    if at is not None:
        if at.tzinfo is None:
            raise InputError(fields={"freeze_at": "Give the time in UTC."})
        if settings.final_deadline is not None and at > settings.final_deadline:
            raise InputError(fields={"freeze_at": "The freeze must start before the end."})
    _set_state(session, "freeze_at", at.isoformat() if at else "", by, now)
    _set_state(session, "freeze_lifted", "0", by, now)
    log_action(
        session,
        "freeze_set",
        by,
        subject=at.strftime("%Y-%m-%d %H:%M") if at else "none",
        public=True,
        now=now,
    )


def lift_freeze(
    session: Session, by: User, settings: ContestSettings, now: datetime | None = None
) -> None:
    """After the end, show the final board to everyone."""
    now = now or utcnow()
    if settings.final_deadline is not None and now <= settings.final_deadline:
        raise DeskRefused(
            "the freeze can be lifted only after the end of the contest "
            f"({settings.final_deadline:%Y-%m-%d %H:%M} UTC)"
        )
    _set_state(session, "freeze_lifted", "1", by, now)
    log_action(session, "freeze_lifted", by, public=True, now=now)


# ---- what the public sees --------------------------------------------------------------------


@dataclass
class ScoreRow:
    """A challenge as the board shows it (the fields the challenge rows template reads)."""

    name: str
    owner: User
    published_at: datetime
    performance: float
    strawberries: float
    peak_strawberries: float
    is_broken: bool
    first_break_at: datetime | None


@dataclass
class Board:
    """The public scoreboard: hidden and disqualified challenges left out, and when frozen,
    nothing that happened after the freeze time. Organisers get the live board."""

    settings: ContestSettings
    now: datetime
    cutoff: datetime | None  # the frozen instant, None when live
    freeze: Freeze
    rulings: dict[int, Ruling] = field(default_factory=dict)

    @property
    def frozen(self) -> bool:
        return self.cutoff is not None

    @property
    def as_of(self) -> datetime:
        return self.cutoff or self.now

    def listed(self, challenge: Challenge) -> bool:
        return (
            challenge.is_published
            and challenge.id not in self.rulings
            and challenge.published_at is not None
            and (self.cutoff is None or challenge.published_at <= self.cutoff)
        )

    def visible_break(self, item: Break) -> bool:
        ruling = self.rulings.get(item.challenge_id)
        return (
            (ruling is None or ruling.ruling != "hidden")
            and item.challenge.is_published
            and (self.cutoff is None or item.created_at <= self.cutoff)
        )

    def breaks_of(self, challenge: Challenge) -> list[Break]:
        return [b for b in challenge.breaks if self.visible_break(b)]

    def first_break(self, challenge: Challenge) -> datetime | None:
        seen = [b.created_at for b in self.breaks_of(challenge)]
        return min(seen) if seen else None

    def strawberries(self, challenge: Challenge) -> float:
        if not self.listed(challenge):
            return 0.0
        assert challenge.published_at is not None
        return scoring.strawberries(
            challenge.performance or 0.0,
            challenge.published_at,
            self.as_of,
            self.first_break(challenge),
            self.settings.final_deadline,
        )

    def row(self, challenge: Challenge) -> Challenge | ScoreRow:
        # Live or frozen, the numbers come from the formula at ``as_of``, as on the challenge
        # page and the chart: the stored columns only order the ranking between events.
        assert challenge.published_at is not None
        first = self.first_break(challenge)
        perf = challenge.performance or 0.0
        return ScoreRow(
            challenge.name,
            challenge.owner,
            challenge.published_at,
            perf,
            self.strawberries(challenge),
            scoring.peak_strawberries(
                perf, challenge.published_at, self.as_of, first, self.settings.final_deadline
            ),
            first is not None,
            first,
        )

    def published(
        self, session: Session, limit: int | None = None, owner: User | None = None
    ) -> list[Challenge | ScoreRow]:
        query = select(Challenge).where(Challenge.status == "published")
        if owner is not None:
            query = query.where(Challenge.owner_id == owner.id)
        rows = [self.row(c) for c in session.scalars(query) if self.listed(c)]
        rows.sort(key=lambda r: (-r.peak_strawberries, r.published_at))
        return rows[:limit] if limit else rows

    def breaks(self, session: Session, limit: int = 200, user: User | None = None) -> list[Break]:
        query = select(Break).order_by(Break.created_at.desc())
        if user is not None:
            query = query.where(Break.user_id == user.id)
        if self.cutoff is not None:
            query = query.where(Break.created_at <= self.cutoff)
        return [b for b in session.scalars(query) if self.visible_break(b)][:limit]

    def bananas(self, session: Session) -> list[challenges.BananaRow]:
        best: dict[int, tuple[User, list[float]]] = {}
        for item in self.breaks(session, limit=1_000_000):
            best.setdefault(item.user_id, (item.user, []))[1].append(item.strawberries_at_break)
        ranking = [
            challenges.BananaRow(user.display_name, scoring.bananas(values), len(values))
            for user, values in best.values()
        ]
        ranking.sort(key=lambda row: (-row.bananas, row.nickname))
        return ranking

    def counters(self, session: Session) -> challenges.Counters:
        listed = [
            c
            for c in session.scalars(select(Challenge).where(Challenge.status == "published"))
            if self.listed(c)
        ]
        broken = sum(1 for c in listed if self.first_break(c) is not None)
        seen = self.breaks(session, limit=1_000_000)
        queued = (
            session.scalar(
                select(func.count(Challenge.id)).where(Challenge.status.in_(challenges.QUEUED))
            )
            or 0
        )
        return challenges.Counters(
            published=len(listed),
            unbroken=len(listed) - broken,
            broken=broken,
            breaks=len(seen),
            designers=len({c.owner_id for c in listed}),
            attackers=len({b.user_id for b in seen}),
            queued=queued,
        )

    def chart_series(self, session: Session) -> list[chart.Series]:
        top = [
            c
            for c in session.scalars(select(Challenge).where(Challenge.status == "published"))
            if self.listed(c)
        ]
        top.sort(key=lambda c: -self.peak(c))
        return [
            chart.Series(c.name, c.performance or 0.0, c.published_at, self.first_break(c))
            for c in top[:8]
            if c.published_at is not None
        ]

    def peak(self, challenge: Challenge) -> float:
        assert challenge.published_at is not None
        return scoring.peak_strawberries(
            challenge.performance or 0.0,
            challenge.published_at,
            self.as_of,
            self.first_break(challenge),
            self.settings.final_deadline,
        )


def board(
    session: Session, settings: ContestSettings, viewer: User | None, now: datetime | None = None
) -> Board:
    now = now or utcnow()
    freeze = freeze_state(session, settings)
    live = viewer is not None and viewer.is_admin
    cutoff = freeze.at if freeze.active(now) and not live else None
    return Board(settings, now, cutoff, freeze, rulings(session))


# ---- rejudge ---------------------------------------------------------------------------------


def select_for_rejudge(
    session: Session, *, name: str | None = None, kind: str | None = None
) -> tuple[str, list[Challenge]]:
    """The challenges one rejudge covers, and its scope as logged."""
    if (name is None) == (kind is None):
        raise InputError(fields={"scope": "Give one challenge's name or one kind."})
    query = select(Challenge).where(Challenge.status.in_(REJUDGEABLE)).order_by(Challenge.id)
    if name is not None:
        found = challenges.get_challenge(session, name.strip())
        if found.status not in REJUDGEABLE:
            raise DeskRefused(f"{found.name} is being judged already ({found.status})")
        return f"challenge {found.name}", [found]
    if kind not in KINDS:
        raise InputError(fields={"kind": f"Unknown kind {kind!r}."})
    return f"kind {kind}", list(session.scalars(query.where(Challenge.kind == kind)))


def start_rejudge(
    session: Session,
    targets: Iterable[Challenge],
    scope: str,
    reason: str,
    by: User | None,
    by_name: str,
    now: datetime | None = None,
) -> Rejudge:
    items = list(targets)
    if not items:
        raise DeskRefused(f"nothing to rejudge ({scope})")
    run = Rejudge(
        scope=scope,
        reason=" ".join(reason.split())[:500],
        by_user_id=by.id if by else None,
        by_name=by_name[:100],
        created_at=now or utcnow(),
    )
    for c in items:
        run.items.append(
            RejudgeItem(
                challenge_id=c.id,
                challenge_name=c.name,
                old_status=c.status,
                old_performance=c.performance,
                old_reason=c.failure,
            )
        )
    session.add(run)
    log_action(session, "rejudge", by, subject=scope[:64], reason=run.reason, now=now)
    session.flush()
    return run


def payloads(
    session: Session, run: Rejudge, settings: ContestSettings, pending_only: bool = False
) -> list[tuple[int, dict]]:
    """(item id, sandbox job) for each challenge still there: the same payload a submission gets.

    ``pending_only``: only the items without an answer yet (to queue again the jobs of a
    sandbox node that died)."""
    jobs = []
    for item in run.items:
        if pending_only and item.done_at is not None:
            continue
        challenge = session.get(Challenge, item.challenge_id) if item.challenge_id else None
        if challenge is not None:
            jobs.append((item.id, challenges.job_payload(challenge, settings)))
    return jobs


def record_rejudge(
    session: Session,
    item_id: int,
    answer: dict,
    settings: ContestSettings,
    now: datetime | None = None,
) -> RejudgeItem | None:
    """Apply one rejudged answer: verdict, performance, strawberries and bananas; log it."""
    item = session.get(RejudgeItem, item_id)
    if item is None or item.done_at is not None:
        return item  # a duplicate answer (retried job): the first one counts
    now = now or utcnow()
    challenge = session.get(Challenge, item.challenge_id) if item.challenge_id else None
    item.done_at = now
    if challenge is None:
        item.new_reason = "the challenge was deleted"
    elif answer.get("stage") == "error":
        item.new_status, item.new_performance = challenge.status, challenge.performance
        item.new_reason = "the judge failed: nothing changed"
    else:
        verdict = judge.conclude(
            get_kind(challenge.kind), challenges.load_vectors(challenge), answer, settings.limits()
        )
        challenge.compiler_message = verdict.compiler_message or None
        challenge.object_size = verdict.object_size or None
        if verdict.accepted:
            challenge.mean_ram_bytes = int(verdict.mean_ram_bytes)
            challenge.mean_cpu_ns = int(verdict.mean_cpu_seconds * 1e9)
            challenge.performance = verdict.performance
            challenge.status, challenge.failure = "published", None
            if challenge.published_at is None:
                challenge.published_at = now
        else:
            challenge.status, challenge.failure = "failed", verdict.reason[:4200]
        item.new_status, item.new_performance = challenge.status, challenge.performance
        item.new_reason = challenge.failure
        item.changed = item.new_status != item.old_status or not _close(
            item.new_performance, item.old_performance
        )
        rescore_breaks(challenge, settings)
        challenges.recompute_scores(session, settings, now)
    run = item.rejudge
    if all(i.done_at is not None for i in run.items):
        run.finished_at = now
    return item


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def rejudge_now(
    session: Session,
    run: Rejudge,
    settings: ContestSettings,
    on_item: Callable[[RejudgeItem], None] | None = None,
) -> Rejudge:
    """Run every job of a rejudge on this machine, one after another (the CLI)."""
    for item_id, payload in payloads(session, run, settings):
        try:
            answer = judge.execute_job(payload)
        except Exception as error:  # the sandbox itself failed: log it, keep the verdict
            answer = {"stage": "error", "message": str(error)}
        done = record_rejudge(session, item_id, answer, settings)
        session.commit()
        if on_item is not None and done is not None:
            on_item(done)
    return run


def rejudges(session: Session, limit: int = 50) -> list[Rejudge]:
    return list(
        session.scalars(
            select(Rejudge).order_by(Rejudge.created_at.desc(), Rejudge.id.desc()).limit(limit)
        )
    )


def get_rejudge(session: Session, public_id: str) -> Rejudge:
    found = session.scalar(select(Rejudge).where(Rejudge.public_id == public_id))
    if found is None:
        raise NotFound("There is no such rejudge.")
    return found
