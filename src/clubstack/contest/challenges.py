"""Submissions, judging results, breaks and scores: plain functions over a database session."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clubstack.contest import judge, scoring, sourcefilter
from clubstack.contest.desk_models import Ruling
from clubstack.contest.errors import BreakRefused, ContestClosed, InvalidKey
from clubstack.contest.kinds import AesKind, EcdsaKind, Vectors, get_kind
from clubstack.contest.models import Break, Challenge
from clubstack.contest.settings import ContestSettings
from clubstack.core.accounts.models import User
from clubstack.core.clock import utcnow
from clubstack.core.errors import Conflict, NotFound

QUEUED = ("submitted", "filtered", "compiled", "tested")
ADJECTIVES = (
    "amber",
    "bold",
    "brisk",
    "calm",
    "clever",
    "crimson",
    "dusty",
    "eager",
    "fuzzy",
    "gentle",
    "hidden",
    "icy",
    "jolly",
    "keen",
    "lucky",
    "mellow",
    "misty",
    "nimble",
    "odd",
    "quiet",
    "rapid",
    "rusty",
    "shy",
    "silent",
    "sly",
    "sunny",
    "swift",
    "tidy",
    "vivid",
    "wild",
)
ANIMALS = (
    "badger",
    "beaver",
    "bison",
    "crane",
    "dingo",
    "falcon",
    "ferret",
    "gecko",
    "heron",
    "ibex",
    "jackal",
    "koala",
    "lemur",
    "lynx",
    "marmot",
    "narwhal",
    "ocelot",
    "otter",
    "panda",
    "puffin",
    "quokka",
    "raven",
    "salmon",
    "tapir",
    "urchin",
    "vole",
    "walrus",
    "yak",
    "zebra",
    "wombat",
)


def friendly_name(session: Session) -> str:
    for _ in range(50):
        name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(ANIMALS)}_{secrets.randbelow(1000)}"
        if session.scalar(select(Challenge.id).where(Challenge.name == name)) is None:
            return name
    return f"challenge_{secrets.token_hex(6)}"


def check_posting_window(settings: ContestSettings, now: datetime) -> None:
    if settings.start is not None and now < settings.start:
        raise ContestClosed(f"submissions open on {settings.start:%Y-%m-%d %H:%M} UTC")
    if settings.posting_deadline is not None and now > settings.posting_deadline:
        raise ContestClosed("the posting deadline has passed")


def _vectors_json(vectors: Vectors) -> str:
    return json.dumps(
        {
            "inputs": [v.hex() for v in vectors.inputs],
            "expected": [v.hex() for v in vectors.expected] if vectors.expected else None,
            "public_key": vectors.public_key.hex() if vectors.public_key else None,
        }
    )


def load_vectors(challenge: Challenge) -> Vectors:
    data = json.loads(challenge.vectors)
    return Vectors(
        inputs=[bytes.fromhex(v) for v in data["inputs"]],
        expected=[bytes.fromhex(v) for v in data["expected"]] if data["expected"] else None,
        public_key=bytes.fromhex(data["public_key"]) if data["public_key"] else None,
    )


def submit(
    session: Session,
    user: User,
    settings: ContestSettings,
    source: bytes,
    *,
    key: str | None = None,
    public_key: str | None = None,
    proof: str | None = None,
    now: datetime | None = None,
) -> Challenge:
    """Check the window, the declared key and the source; store the challenge, queued.

    Nothing is compiled before the key checks pass. For aes the key is used once to compute
    the reference ciphertexts and then dropped.
    """
    now = now or utcnow()
    check_posting_window(settings, now)
    kind = get_kind(settings.kind)
    limits = settings.limits()
    challenge = Challenge(owner_id=user.id, kind=kind.name, created_at=now)
    if isinstance(kind, AesKind):
        if not key:
            raise InvalidKey("declare the AES key (32 hexadecimal digits)")
        vectors = kind.make_vectors(kind.parse_key(key), limits.random_vectors)
    elif isinstance(kind, EcdsaKind):
        if not public_key or not proof:
            raise InvalidKey("give the public key (x || y) and the proof of knowledge (r || s)")
        raw = kind.check_public_key(public_key, proof)
        if session.scalar(select(Challenge.id).where(Challenge.public_key == raw.hex())):
            raise Conflict("this public key was already submitted")
        challenge.public_key = raw.hex()
        challenge.proof = proof.strip().lower().removeprefix("0x")
        vectors = kind.make_vectors(raw, limits.random_vectors)
    else:  # pragma: no cover - every kind is handled above
        raise InvalidKey(f"no submission rule for kind {kind.name}")
    text = sourcefilter.check_source(source, judge.filter_rules(kind, limits))
    challenge.source = text
    challenge.vectors = _vectors_json(vectors)
    challenge.name = friendly_name(session)
    challenge.status = "filtered"
    # one submission per member on the sandbox queue; a later one waits (queued_at unset)
    challenge.queued_at = None if _has_queued(session, user.id) else now
    challenge.attempts = 1
    session.add(challenge)
    session.flush()
    return challenge


def _has_queued(session: Session, owner_id: int) -> bool:
    return (
        session.scalar(
            select(Challenge.id)
            .where(
                Challenge.owner_id == owner_id,
                Challenge.status.in_(QUEUED),
                Challenge.queued_at.is_not(None),
            )
            .limit(1)
        )
        is not None
    )


def release_next(session: Session, owner_id: int, now: datetime | None = None) -> Challenge | None:
    """The member's oldest waiting submission, now put on the queue (None if one is there)."""
    if _has_queued(session, owner_id):
        return None
    waiting = session.scalar(
        select(Challenge)
        .where(
            Challenge.owner_id == owner_id,
            Challenge.status == "filtered",
            Challenge.queued_at.is_(None),
        )
        .order_by(Challenge.id)
        .limit(1)
    )
    if waiting is not None:
        waiting.queued_at = now or utcnow()
        session.flush()
    return waiting


def release_waiting(session: Session, now: datetime | None = None) -> list[Challenge]:
    """For every member with waiting submissions and none on the queue: release the next."""
    owners = session.scalars(
        select(Challenge.owner_id)
        .where(Challenge.status == "filtered", Challenge.queued_at.is_(None))
        .distinct()
    ).all()
    released = [release_next(session, owner, now) for owner in owners]
    return [c for c in released if c is not None]


def job_payload(challenge: Challenge, settings: ContestSettings) -> dict:
    """What a sandbox node receives: source, kind (harness) and inputs; no key, no database."""
    vectors = load_vectors(challenge)
    return judge.make_payload(
        get_kind(challenge.kind), challenge.source, vectors.inputs, settings.limits()
    )


def queue_position(session: Session, challenge: Challenge) -> int | None:
    """1 for the next one to be judged; None once judged."""
    if challenge.status not in ("submitted", "filtered"):
        return None
    ahead = session.scalar(
        select(func.count(Challenge.id)).where(
            Challenge.status.in_(("submitted", "filtered")), Challenge.id < challenge.id
        )
    )
    return int(ahead or 0) + 1


def record_progress(
    session: Session, challenge_id: int, stage: str, now: datetime | None = None
) -> None:
    """A sandbox node reports: "started" (took the job) or "compiled"."""
    challenge = session.get(Challenge, challenge_id)
    if challenge is None or challenge.status not in ("submitted", "filtered", "compiled"):
        return
    if stage == "started":
        challenge.started_at = now or utcnow()
    elif stage == "compiled":
        challenge.status = "compiled"


def record_answer(
    session: Session,
    challenge_id: int,
    answer: dict,
    settings: ContestSettings,
    now: datetime | None = None,
) -> Challenge | None:
    """Verify a sandbox node's answer (only the web side knows the expected outputs)."""
    challenge = session.get(Challenge, challenge_id)
    if challenge is None or challenge.status in ("published", "failed"):
        return challenge  # a duplicate answer (retried job): the first one counts
    now = now or utcnow()
    kind = get_kind(challenge.kind)
    verdict = judge.conclude(kind, load_vectors(challenge), answer, settings.limits())
    challenge.compiler_message = verdict.compiler_message or None
    challenge.object_size = verdict.object_size or None
    if not verdict.accepted:
        challenge.status = "failed"
        challenge.failure = verdict.reason[:4200]
        return challenge
    challenge.mean_ram_bytes = int(verdict.mean_ram_bytes)
    challenge.mean_cpu_ns = int(verdict.mean_cpu_seconds * 1e9)
    challenge.performance = verdict.performance
    challenge.status = "published"
    challenge.published_at = now
    challenge.failure = None
    refresh_score(challenge, settings, now)
    return challenge


UNSTARTED_FACTOR = 48  # a job nobody took for 48 job timeouts is presumed lost too


def reap_lost_jobs(
    session: Session,
    settings: ContestSettings,
    requeue: Callable[[Challenge], None],
    now: datetime | None = None,
) -> tuple[int, int]:
    """Jobs whose worker died: retried once, then failed. Returns (retried, failed).

    A job counts as lost when a worker took it ("started") more than ``job_timeout_minutes``
    ago without answering, or when no worker took it for 48 times that (a store that lost
    it). A long queue alone does not fail anything.
    """
    now = now or utcnow()
    timeout = settings.job_timeout_minutes * 60
    retried = failed = 0
    stuck = session.scalars(select(Challenge).where(Challenge.status.in_(QUEUED))).all()
    for challenge in stuck:
        if challenge.started_at is None and challenge.queued_at is None:
            continue  # waiting behind the member's own earlier submission, not lost
        if challenge.started_at is not None:
            lost = (now - challenge.started_at).total_seconds() > timeout
        else:
            assert challenge.queued_at is not None
            waited = (now - challenge.queued_at).total_seconds()
            lost = waited > timeout * UNSTARTED_FACTOR
        if not lost:
            continue
        if challenge.attempts < 2:
            challenge.attempts += 1
            challenge.started_at = None
            challenge.queued_at = now
            challenge.status = "filtered"
            requeue(challenge)
            retried += 1
        else:
            challenge.status = "failed"
            challenge.failure = "the judge did not answer (the job was retried once)"
            failed += 1
    return retried, failed


def get_challenge(session: Session, name: str) -> Challenge:
    challenge = session.scalar(select(Challenge).where(Challenge.name == name))
    if challenge is None:
        raise NotFound("There is no challenge of that name.")
    return challenge


def can_see_source(challenge: Challenge, user: User | None) -> bool:
    return challenge.is_published or (
        user is not None and (user.id == challenge.owner_id or user.is_admin)
    )


def current_strawberries(challenge: Challenge, settings: ContestSettings, now: datetime) -> float:
    return live_score(challenge, settings, now).strawberries


def attempt_break(
    session: Session,
    user: User,
    challenge: Challenge,
    secret: str,
    settings: ContestSettings,
    now: datetime | None = None,
) -> Break:
    """Record a break when ``secret`` (AES key / ECDSA private key) is right."""
    now = now or utcnow()
    if settings.final_deadline is not None and now > settings.final_deadline:
        raise ContestClosed("the contest is over: no more breaks")
    if not challenge.is_published:
        raise BreakRefused("only published challenges can be broken")
    if challenge.owner_id == user.id:
        raise BreakRefused("you cannot break your own challenge")
    if session.scalar(select(Ruling.id).where(Ruling.challenge_id == challenge.id)):
        raise BreakRefused("the organisers took this challenge out of the contest")
    if session.scalar(
        select(Break.id).where(Break.challenge_id == challenge.id, Break.user_id == user.id)
    ):
        raise Conflict("you already broke this challenge")
    kind = get_kind(challenge.kind)
    if isinstance(kind, AesKind):
        vectors = load_vectors(challenge)
        assert vectors.expected is not None
        right = kind.check_break(
            secret, list(zip(vectors.inputs[:4], vectors.expected[:4], strict=True))
        )
    else:
        assert isinstance(kind, EcdsaKind) and challenge.public_key is not None
        right = kind.check_break(secret, bytes.fromhex(challenge.public_key))
    if not right:
        raise InvalidKey("that is not the key of this challenge")
    found = Break(
        challenge_id=challenge.id,
        user_id=user.id,
        created_at=now,
        strawberries_at_break=current_strawberries(challenge, settings, now),
    )
    if challenge.first_break_at is None:
        challenge.first_break_at = now
    refresh_score(challenge, settings, now)
    session.add(found)
    session.flush()
    return found


def recompute_scores(
    session: Session, settings: ContestSettings, now: datetime | None = None
) -> int:
    """The periodic job: refresh every published challenge's strawberries and peak."""
    now = now or utcnow()
    count = 0
    for challenge in session.scalars(select(Challenge).where(Challenge.status == "published")):
        refresh_score(challenge, settings, now)
        count += 1
    return count


def refresh_score(challenge: Challenge, settings: ContestSettings, now: datetime) -> None:
    """Store the strawberries and peak as of ``now`` (on publication, on a break, and by
    the periodic job, which keeps the ranking order current between events)."""
    if challenge.published_at is None:
        return
    score = live_score(challenge, settings, now)
    challenge.strawberries = score.strawberries
    challenge.peak_strawberries = score.peak
    challenge.scored_at = now


@dataclass(frozen=True)
class Score:
    strawberries: float
    peak: float


def live_score(challenge: Challenge, settings: ContestSettings, now: datetime) -> Score:
    """The one source of the numbers every page shows: the formula at ``now``, the same
    the chart draws, so the table, the challenge page and the chart always agree."""
    if challenge.published_at is None or not challenge.is_published:
        return Score(0.0, 0.0)
    perf = challenge.performance or 0.0
    args = (perf, challenge.published_at, now, challenge.first_break_at, settings.final_deadline)
    return Score(scoring.strawberries(*args), scoring.peak_strawberries(*args))


@dataclass
class Counters:
    published: int
    unbroken: int
    broken: int
    breaks: int
    designers: int
    attackers: int
    queued: int


def counters(session: Session) -> Counters:
    published = (
        session.scalar(select(func.count(Challenge.id)).where(Challenge.status == "published")) or 0
    )
    broken = (
        session.scalar(
            select(func.count(Challenge.id)).where(
                Challenge.status == "published", Challenge.first_break_at.is_not(None)
            )
        )
        or 0
    )
    return Counters(
        published=published,
        unbroken=published - broken,
        broken=broken,
        breaks=session.scalar(select(func.count(Break.id))) or 0,
        designers=session.scalar(
            select(func.count(func.distinct(Challenge.owner_id))).where(
                Challenge.status == "published"
            )
        )
        or 0,
        attackers=session.scalar(select(func.count(func.distinct(Break.user_id)))) or 0,
        queued=session.scalar(select(func.count(Challenge.id)).where(Challenge.status.in_(QUEUED)))
        or 0,
    )


def published_challenges(session: Session, limit: int | None = None) -> list[Challenge]:
    query = (
        select(Challenge)
        .where(Challenge.status == "published")
        .order_by(Challenge.peak_strawberries.desc(), Challenge.published_at)
    )
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def recent_breaks(session: Session, limit: int = 200) -> list[Break]:
    return list(session.scalars(select(Break).order_by(Break.created_at.desc()).limit(limit)))


@dataclass
class BananaRow:
    nickname: str
    bananas: float
    breaks: int


def bananas_ranking(session: Session) -> list[BananaRow]:
    best = (
        select(
            Break.user_id,
            func.max(Break.strawberries_at_break).label("best"),
            func.count(Break.id).label("n"),
        )
        .group_by(Break.user_id)
        .subquery()
    )
    rows = session.execute(
        select(User, best.c.best, best.c.n).join(best, best.c.user_id == User.id)
    ).all()
    ranking = [BananaRow(user.display_name, scoring.bananas([top]), n) for user, top, n in rows]
    ranking.sort(key=lambda row: (-row.bananas, row.nickname))
    return ranking


def user_by_nickname(session: Session, nickname: str) -> User:
    user = session.scalar(select(User).where(User.nickname == nickname))
    if user is None:
        raise NotFound("There is no participant of that nickname.")
    return user


def user_challenges(session: Session, user: User, include_private: bool) -> list[Challenge]:
    query = select(Challenge).where(Challenge.owner_id == user.id)
    if not include_private:
        query = query.where(Challenge.status == "published")
    return list(session.scalars(query.order_by(Challenge.created_at.desc())))


def user_breaks(session: Session, user: User) -> list[Break]:
    return list(
        session.scalars(
            select(Break).where(Break.user_id == user.id).order_by(Break.created_at.desc())
        )
    )
