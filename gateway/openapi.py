"""The OpenAPI 3.1 document of ``POST /v1/calls`` and the HTTP status of each reply error code."""

from __future__ import annotations

from typing import Any

from crm_bridge import codec

# The phone's reply error codes (the contract's) and the gateway's own, as HTTP statuses.
STATUS_OF_ERROR: dict[str, int] = {
    codec.INVALID_PAYLOAD: 400,
    codec.INVALID_NUMBER: 422,
    codec.BUSY: 409,
    codec.NOT_REGISTERED: 503,
    codec.EXPIRED: 410,
    codec.NOT_FOUND: 404,
    codec.UNKNOWN_COMMAND: 400,
    "no_desk": 404,
    "timeout": 504,
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": sorted(set(STATUS_OF_ERROR) | {"unauthorized"})},
                "message": {"type": "string"},
            },
        },
        "request_id": {"type": "string"},
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "deskphone gateway: click-to-call",
        "version": "1",
        "description": "A CRM asks a desk phone to call a number. The phone alerts (distinct ring, the "
        "number and display on its screen); lifting the handset places the call. The answer is the "
        "phone's own reply. Every event of the call echoes `crm`, and the call card (webhook) carries it.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": _ERROR},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/calls": {
            "post": {
                "summary": "Call a number from a desk",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["number"],
                                "properties": {
                                    "desk": {"type": "string", "description": "device id (office.csv)"},
                                    "crm_user": {"type": "string", "description": "crm_user (office.csv)"},
                                    "number": {"type": "string", "pattern": "^[0-9+*#]{1,32}$"},
                                    "ttl_s": {"type": "number", "minimum": 1, "maximum": 3600},
                                    "display": {"type": "string", "maxLength": 64},
                                    "crm": {"type": "object", "description": "opaque, echoed"},
                                },
                                "oneOf": [{"required": ["desk"]}, {"required": ["crm_user"]}],
                            }
                        }
                    },
                },
                "responses": {
                    "202": {
                        "description": "accepted: the phone alerts (`alerting`) or dials at once (`dialing`)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["request_id", "status"],
                                    "properties": {
                                        "request_id": {"type": "string"},
                                        "status": {"type": "string", "enum": ["accepted", "dialing"]},
                                        "result": {"type": "object"},
                                    },
                                }
                            }
                        },
                    },
                    **{
                        str(status): {
                            "description": ", ".join(
                                sorted(c for c, s in STATUS_OF_ERROR.items() if s == status)
                            ),
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                            },
                        }
                        for status in sorted(set(STATUS_OF_ERROR.values()))
                    },
                    "401": {
                        "description": "no or a wrong bearer token",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            }
        }
    },
}
