"""The compute service's JSON API: capsuls, SSH keys, plans and images. Same rules as the pages
(views.py), whose request models and shared steps it uses; errors go through the core's mapping."""

from __future__ import annotations

from flask import Response, jsonify, request

from clubstack.compute import capsuls, metering, stats
from clubstack.compute.errors import InputError
from clubstack.compute.views import KeyRequest, capsul_json, create_capsul, member_id, power_action
from clubstack.core.accounts.auth import api_auth
from clubstack.core.clock import utcnow
from clubstack.core.db import db
from clubstack.core.service import Routes
from clubstack.core.validation import validate
from clubstack.core.web import limiter

routes = Routes()


@routes.get("/api/capsuls")
@api_auth
def api_list() -> Response:
    return jsonify(
        capsuls=[capsul_json(c) for c in capsuls.member_capsuls(db.session(), member_id())]
    )


@routes.post("/api/capsuls")
@api_auth
@limiter.limit("20/hour")
def apicreate_capsul() -> tuple[Response, int]:
    capsul = create_capsul(request.get_json(silent=True))
    return jsonify(capsul_json(capsul)), 202


@routes.get("/api/capsuls/<capsul_id>")
@api_auth
def api_get(capsul_id: str) -> Response:
    session = db.session()
    capsul = capsuls.refresh(session, capsuls.get_capsul(session, capsul_id, member_id()))
    session.commit()
    return jsonify(capsul_json(capsul))


@routes.post("/api/capsuls/<capsul_id>/actions")
@api_auth
@limiter.limit("60/hour")
def api_action(capsul_id: str) -> Response:
    _, capsul = power_action(
        capsul_id,
        (request.get_json(silent=True) or {}).get("action")
        if isinstance(request.get_json(silent=True), dict)
        else None,
    )
    return jsonify(capsul_json(capsul))


@routes.delete("/api/capsuls/<capsul_id>")
@api_auth
def api_destroy(capsul_id: str) -> Response:
    session = db.session()
    capsul = capsuls.get_capsul(session, capsul_id, member_id())
    metering.meter_capsul(session, capsul, utcnow())
    capsuls.destroy(session, capsul)
    session.commit()
    return jsonify(id=capsul.id, status=capsul.status)


@routes.get("/api/capsuls/<capsul_id>/console")
@api_auth
def api_console(capsul_id: str) -> Response:
    capsul = capsuls.get_capsul(db.session(), capsul_id, member_id())
    return jsonify(id=capsul.id, console=capsuls.console(capsul))


@routes.get("/api/capsuls/<capsul_id>/stats")
@api_auth
def api_stats(capsul_id: str) -> Response:
    session = db.session()
    capsul = capsuls.get_capsul(session, capsul_id, member_id())
    span = request.args.get("range", "hour")
    if span not in stats.RANGES:
        raise InputError(fields={"range": f"One of {', '.join(stats.RANGES)}."})
    points = stats.series(session, capsul.id, span, utcnow())
    return jsonify(
        id=capsul.id,
        range=span,
        points=[
            {
                "at": p.at.isoformat(),
                "cpu_percent": round(p.cpu_percent, 2),
                "mem_mib": p.mem_mib,
                "disk_read": p.disk_read,
                "disk_write": p.disk_write,
                "net_rx": p.net_rx,
                "net_tx": p.net_tx,
            }
            for p in points
        ],
    )


@routes.get("/api/ssh-keys")
@api_auth
def api_keys() -> Response:
    return jsonify(
        ssh_keys=[
            {"id": k.id, "name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint}
            for k in capsuls.ssh_keys(db.session(), member_id())
        ]
    )


@routes.post("/api/ssh-keys")
@api_auth
def api_add_key() -> tuple[Response, int]:
    req = validate(KeyRequest, request.get_json(silent=True))
    session = db.session()
    key = capsuls.add_ssh_key(session, member_id(), req.name, req.public_key)
    session.commit()
    return jsonify(id=key.id, name=key.name, fingerprint=key.fingerprint), 201


@routes.delete("/api/ssh-keys/<int:key_id>")
@api_auth
def api_delete_key(key_id: int) -> Response:
    session = db.session()
    capsuls.delete_ssh_key(session, member_id(), key_id)
    session.commit()
    return jsonify(id=key_id, deleted=True)


@routes.get("/api/plans")
def api_plans() -> Response:
    plans = capsuls.active_plans(db.session())
    return jsonify(
        plans=[
            {
                "name": p.name,
                "vcpus": p.vcpus,
                "memory_mib": p.memory_mib,
                "disk_gib": p.disk_gib,
                "price_month_cents": p.price_month_cents,
                "price_hour_cents": p.price_hour_cents,
            }
            for p in plans
        ]
    )


@routes.get("/api/images")
def api_images() -> Response:
    images = capsuls.active_images(db.session())
    return jsonify(images=[{"name": i.name, "title": i.title} for i in images])
