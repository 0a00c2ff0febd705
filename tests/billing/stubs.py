"""Local stand-ins of Stripe's and BTCPay Server's APIs, speaking their documented wire formats,
and webhook senders that sign like the real services (written from the docs, not with the
code under test)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

import requests

from tests.httpstub import Request, StubServer


class _Server:
    """A stand-in on the shared stub server (tests/httpstub.py): `handle` answers in JSON."""

    def __init__(self) -> None:
        self.stub = StubServer(self._serve)
        self.requests = self.stub.requests
        self.port, self.url, self.host = self.stub.port, self.stub.url, self.stub.host
        self.stop = self.stub.stop

    def _serve(self, request: Request) -> tuple[int, Any]:
        return self.handle(request.method, request.target, dict(request.headers), request.body)

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        raise NotImplementedError


def _unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (line_items[0][price_data][currency]=eur) back into a dict."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return root


class StripeStub(_Server):
    """POST /v1/checkout/sessions as Stripe answers it; signs webhook events with whsec."""

    def __init__(
        self, api_key: str = "sk_test_clubstack", webhook_secret: str = "whsec_test"
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.sessions: dict[str, dict[str, Any]] = {}
        super().__init__()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}
        if method == "POST" and path == "/v1/checkout/sessions":
            params = _unflatten(parse_qsl(body.decode()))
            item = params["line_items"]["0"]
            session_id = "cs_test_" + secrets.token_hex(12)
            obj = {
                "id": session_id,
                "object": "checkout.session",
                "mode": params["mode"],
                "amount_total": int(item["price_data"]["unit_amount"]) * int(item["quantity"]),
                "currency": item["price_data"]["currency"],
                "status": "open",
                "payment_status": "unpaid",
                "payment_intent": None,
                "client_reference_id": params.get("client_reference_id"),
                "customer_email": params.get("customer_email"),
                "metadata": params.get("metadata", {}),
                "success_url": params["success_url"],
                "cancel_url": params["cancel_url"],
                "url": f"{self.url}/pay/{session_id}",
                "expires_at": int(time.time()) + 86400,
                "livemode": False,
            }
            self.sessions[session_id] = obj
            return 200, obj
        return 404, {
            "error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}
        }

    # --- webhooks ---

    def event(self, kind: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
        return json.dumps(
            {
                "id": event_id or "evt_" + secrets.token_hex(12),
                "object": "event",
                "api_version": "2024-06-20",
                "created": int(time.time()),
                "type": kind,
                "livemode": False,
                "pending_webhooks": 1,
                "data": {"object": obj},
                "request": {"id": None, "idempotency_key": None},
            }
        ).encode()

    def sign(self, payload: bytes, secret: str | None = None, at: int | None = None) -> str:
        stamp = int(time.time()) if at is None else at
        signed = f"{stamp}.".encode() + payload
        digest = hmac.new((secret or self.webhook_secret).encode(), signed, hashlib.sha256)
        return f"t={stamp},v1={digest.hexdigest()}"

    def completed(self, session_id: str, *, paid: bool = True) -> dict[str, Any]:
        obj = dict(self.sessions[session_id])
        obj.update(
            status="complete",
            payment_status="paid" if paid else "unpaid",
            payment_intent="pi_" + session_id[-12:],
        )
        return obj

    @staticmethod
    def post(url: str, payload: bytes, signature: str) -> requests.Response:
        """Deliver like Stripe: POST the raw JSON with the Stripe-Signature header."""
        return requests.post(
            url,
            data=payload,
            timeout=10,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature,
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
        )


class BTCPayStub(_Server):
    """Greenfield invoices (create, get) with a status the test moves; signed webhooks."""

    def __init__(
        self,
        api_key: str = "btcpay-key",
        store: str = "store-1",
        webhook_secret: str = "btcpay-secret",
    ) -> None:
        self.api_key = api_key
        self.store = store
        self.webhook_secret = webhook_secret
        self.invoices: dict[str, dict[str, Any]] = {}
        self.fail_gets = False
        super().__init__()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        if headers.get("Authorization") != f"token {self.api_key}":
            return 401, {"code": "unauthenticated", "message": "Authentication is required"}
        prefix = f"/api/v1/stores/{self.store}/invoices"
        if method == "POST" and path == prefix:
            data = json.loads(body)
            invoice_id = secrets.token_hex(11)
            now = int(time.time())
            invoice = {
                "id": invoice_id,
                "storeId": self.store,
                "amount": data["amount"],
                "currency": data["currency"],
                "type": "Standard",
                "checkoutLink": f"{self.url}/i/{invoice_id}",
                "status": "New",
                "additionalStatus": "None",
                "createdTime": now,
                "expirationTime": now + 900,
                "monitoringExpiration": now + 3600,
                "metadata": data.get("metadata", {}),
                "checkout": data.get("checkout", {}),
            }
            self.invoices[invoice_id] = invoice
            return 200, invoice
        if method == "GET" and path.startswith(prefix + "/"):
            if self.fail_gets:
                return 503, {"code": "unavailable", "message": "down"}
            invoice = self.invoices.get(path.rsplit("/", 1)[1])
            if invoice is None:
                return 404, {"code": "invoice-not-found", "message": "The invoice was not found"}
            return 200, invoice
        return 404, {"code": "not-found", "message": "not found"}

    def set_status(self, invoice_id: str, status: str, additional: str = "None") -> None:
        self.invoices[invoice_id]["status"] = status
        self.invoices[invoice_id]["additionalStatus"] = additional

    def event(
        self,
        kind: str,
        invoice_id: str,
        delivery_id: str | None = None,
        original: str | None = None,
    ) -> bytes:
        body: dict[str, Any] = {
            "deliveryId": delivery_id or secrets.token_hex(11),
            "webhookId": "wh1",
            "originalDeliveryId": original or delivery_id,
            "isRedelivery": original is not None,
            "type": kind,
            "timestamp": int(time.time()),
            "storeId": self.store,
            "invoiceId": invoice_id,
            "metadata": self.invoices.get(invoice_id, {}).get("metadata"),
        }
        if kind == "InvoiceInvalid":
            body["manuallyMarked"] = False
        if kind == "InvoiceSettled":
            body["manuallyMarked"] = False
            body["overPaid"] = False
        if kind == "InvoiceProcessing":
            body["overPaid"] = False
        return json.dumps(body).encode()

    def sign(self, payload: bytes, secret: str | None = None) -> str:
        digest = hmac.new((secret or self.webhook_secret).encode(), payload, hashlib.sha256)
        return "sha256=" + digest.hexdigest()

    @staticmethod
    def post(url: str, payload: bytes, signature: str) -> requests.Response:
        return requests.post(
            url,
            data=payload,
            timeout=10,
            headers={"Content-Type": "application/json", "BTCPay-Sig": signature},
        )
