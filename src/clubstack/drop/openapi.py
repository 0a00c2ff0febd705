"""The drop's OpenAPI 3 description, served at <prefix>/openapi.json."""

from __future__ import annotations

from typing import Any

from clubstack.drop.settings import DropSettings

ID_PATTERN = "^[A-Za-z0-9_-]{22}$"
# Some non-space character and no NUL: what the server accepts as a message.
TEXT_PATTERN = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _or_page(answer: dict[str, Any]) -> dict[str, Any]:
    """The same error as a page, for clients that did not ask for JSON (GET of a message)."""
    content = {**answer["content"], "text/html": {"schema": {"type": "string"}}}
    return {**answer, "content": content}


def _limited() -> dict[str, Any]:
    answer = _error("Too many requests from this address; see Retry-After.")
    answer["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return answer


def openapi_document(prefix: str, settings: DropSettings) -> dict[str, Any]:
    message_id = {
        "name": "message_id",
        "in": "path",
        "required": True,
        "description": "The message's id: 128 random bits, 22 URL-safe characters.",
        "schema": {"type": "string", "pattern": ID_PATTERN},
    }
    common = {
        "404": _error("No such message: missing, expired, already read, or a malformed id."),
        "429": _limited(),
        "503": _error("The message store is unreachable."),
    }
    text_body = {"type": "string", "minLength": 1, "pattern": TEXT_PATTERN}
    create_body = {
        "type": "object",
        "required": ["message"],
        "additionalProperties": False,
        "properties": {
            "message": {
                "type": "string",
                "minLength": 1,
                "pattern": TEXT_PATTERN,
                "description": f"The text (at most {settings.max_bytes} bytes of UTF-8). "
                "Ciphertext from the page's end-to-end encryption is text like any other.",
            },
            "expires_in": {
                "type": "integer",
                "minimum": 60,
                "maximum": settings.max_lifetime,
                "description": f"Lifetime in seconds (default {settings.default_lifetime}).",
            },
            "burn_after_reading": {
                "type": "boolean",
                "description": "Delete the message when it is first read.",
            },
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "clubstack drop",
            "version": "1",
            "description": "Leave a message at an unguessable URL.",
        },
        "servers": [{"url": prefix or "/"}],
        "paths": {
            "/": {
                "get": {
                    "operationId": "formPage",
                    "summary": "The page with the form (HTML)",
                    "responses": {
                        "200": {
                            "description": "The page.",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        },
                        "429": _limited(),
                    },
                },
                "post": {
                    "operationId": "createMessage",
                    "summary": "Leave a message",
                    "parameters": [
                        {
                            "name": "expires_in",
                            "in": "query",
                            "required": False,
                            "description": "Lifetime for text/plain bodies.",
                            "schema": {
                                "type": "integer",
                                "minimum": 60,
                                "maximum": settings.max_lifetime,
                            },
                        },
                        {
                            "name": "burn_after_reading",
                            "in": "query",
                            "required": False,
                            "description": "Burn after reading, for text/plain bodies.",
                            "schema": {"type": "boolean"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": create_body},
                            "application/x-www-form-urlencoded": {"schema": create_body},
                            "text/plain": {"schema": text_body},
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "Created; Location is the message's URL.",
                            "headers": {
                                "Location": {"schema": {"type": "string"}, "required": True}
                            },
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Created"}
                                }
                            },
                        },
                        "400": _error("Not JSON, not UTF-8, no or empty message, bad field."),
                        "413": _error("The message is larger than the limit."),
                        "429": _limited(),
                        "503": common["503"],
                    },
                },
            },
            "/msg/{message_id}": {
                "parameters": [message_id],
                "get": {
                    "operationId": "readMessage",
                    "summary": "Read a message (JSON when asked for; a page otherwise)",
                    "responses": {
                        "200": {
                            "description": "The message. A burn-after-reading message is gone "
                            "after this answer.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Message"}
                                },
                                "text/html": {"schema": {"type": "string"}},
                            },
                        },
                        **{status: _or_page(answer) for status, answer in common.items()},
                    },
                },
                "delete": {
                    "operationId": "deleteMessage",
                    "summary": "Delete a message with its delete token",
                    "parameters": [
                        {
                            "name": "X-Delete-Token",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1, "pattern": "\\S"},
                        }
                    ],
                    "responses": {
                        "204": {"description": "Deleted."},
                        "400": _error("No delete token sent."),
                        **common,
                    },
                },
            },
            "/msg/{message_id}/raw": {
                "parameters": [message_id],
                "get": {
                    "operationId": "readRawMessage",
                    "summary": "Read a message as plain text",
                    "responses": {
                        "200": {
                            "description": "The message text.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **common,
                    },
                },
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "Created": {
                    "type": "object",
                    "required": [
                        "message_id",
                        "url",
                        "raw_url",
                        "expires_at",
                        "delete_token",
                        "burn_after_reading",
                    ],
                    "properties": {
                        "message_id": {"type": "string", "pattern": ID_PATTERN},
                        "url": {"type": "string"},
                        "raw_url": {"type": "string"},
                        "expires_at": {"type": "string", "format": "date-time"},
                        "burn_after_reading": {"type": "boolean"},
                        "delete_token": {"type": "string"},
                    },
                },
                "Message": {
                    "type": "object",
                    "required": ["message_id", "message", "created_at", "expires_at"],
                    "properties": {
                        "message_id": {"type": "string", "pattern": ID_PATTERN},
                        "message": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "expires_at": {"type": "string", "format": "date-time"},
                        "burn_after_reading": {"type": "boolean"},
                    },
                },
            }
        },
    }
