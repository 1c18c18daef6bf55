"""The API's contract. Request schemas here are also what the views validate against (one source of truth)."""

from __future__ import annotations

EMAIL = {"type": "string", "minLength": 3, "maxLength": 254}
PASSWORD = {"type": "string", "minLength": 1, "maxLength": 1024}
TOKEN = {"type": "string", "minLength": 1, "maxLength": 128}


def _obj(**props):
    return {"type": "object", "additionalProperties": False, "required": list(props), "properties": props}


SCHEMAS = {
    "Credentials": _obj(email=EMAIL, password=PASSWORD),
    "EmailOnly": _obj(email=EMAIL),
    "TokenOnly": _obj(token=TOKEN),
    "EmailVerify": {"type": "object", "additionalProperties": False, "required": ["token", "password"],
                    "properties": {"token": TOKEN, "password": PASSWORD}},
    "PasswordChange": _obj(current_password=PASSWORD, new_password=PASSWORD),
    "PasswordReset": _obj(token=TOKEN, new_password=PASSWORD),
    "PasswordOnly": _obj(password=PASSWORD),
    "EmailCode": _obj(pending_token=TOKEN, code={"type": "string", "minLength": 1, "maxLength": 16}),
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                       "violations": {"type": "array", "items": {"type": "string"}},
                       "retry_after": {"type": "integer"}},
    },
    "Session": {
        "type": "object",
        "required": ["id", "created_at", "last_seen_at", "aal", "methods", "current"],
        "properties": {
            "id": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
            "last_seen_at": {"type": "string", "format": "date-time"}, "ip": {"type": ["string", "null"]},
            "user_agent": {"type": ["string", "null"]}, "aal": {"type": "integer"},
            "methods": {"type": "array", "items": {"type": "string"}}, "current": {"type": "boolean"},
        },
    },
    "LoginOk": {
        "type": "object",
        "required": ["session_token", "expires_in", "user_id", "must_change_password"],
        "properties": {"session_token": {"type": "string"}, "expires_in": {"type": "integer"},
                       "user_id": {"type": "integer"}, "must_change_password": {"type": "boolean"},
                       "reasons": {"type": "array", "items": {"type": "string"}}},
    },
    "Whoami": {
        "type": "object",
        "required": ["user_id", "email", "session"],
        "properties": {"user_id": {"type": "integer"}, "email": {"type": "string"},
                       "session": {"$ref": "#/components/schemas/Session"}},
    },
}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _body(name):
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _resp(desc, name=None):
    r = {"description": desc}
    if name:
        r["content"] = {"application/json": {"schema": _ref(name)}}
    return r


ERRORS = {"400": _resp("Malformed request", "Error"), "413": _resp("Too large", "Error"),
          "415": _resp("Not JSON", "Error"), "503": _resp("A dependency is down", "Error")}
AUTH = {"401": _resp("Not signed in", "Error")}
FORCED = {"403": _resp("password_change_required: the password must be changed first (POST /api/v1/password/change)",
                       "Error")}
SECURED = [{"session": []}]


def spec() -> dict:
    paths = {
        "/api/v1/register": {"post": {"summary": "Register (e-mail verification link sent)",
                                       "requestBody": _body("Credentials"),
                                       "responses": {"202": _resp("Accepted; check e-mail"),
                                                     "422": _resp("Password refused", "Error"), **ERRORS}}},
        "/api/v1/email/verify": {"post": {"summary": "Confirm an e-mail address", "requestBody": _body("EmailVerify"),
                                           "responses": {"204": _resp("Confirmed"),
                                                         "400": _resp("Bad link", "Error"), **ERRORS}}},
        "/api/v1/login": {"post": {"summary": "Password login", "requestBody": _body("Credentials"),
                                    "responses": {"200": _resp("Signed in", "LoginOk"),
                                                  "401": _resp("Wrong credentials", "Error"),
                                                  "403": _resp("Not allowed: email_unverified, denied, mfa_required "
                                                               "(the account has a second factor; no session is "
                                                               "issued — sign in on the web), or "
                                                               "email_code_required (with a pending_token: finish "
                                                               "at /api/v1/login/email-code)", "Error"),
                                                  "429": _resp("Throttled", "Error"), **ERRORS}}},
        "/api/v1/login/email-code": {"post": {"summary": "Finish a login with the code e-mailed to the account "
                                                         "(after 403 email_code_required)",
                                               "requestBody": _body("EmailCode"),
                                               "responses": {"200": _resp("Signed in", "LoginOk"),
                                                             "401": _resp("Wrong or expired code", "Error"),
                                                             "429": _resp("Throttled", "Error"), **ERRORS}}},
        "/api/v1/logout": {"post": {"summary": "End this session", "security": SECURED,
                                     "responses": {"204": _resp("Signed out"), **AUTH, **ERRORS}}},
        "/api/v1/session": {"get": {"summary": "Check the session (who am I)", "security": SECURED,
                                     "responses": {"200": _resp("Live session", "Whoami"), **AUTH, **FORCED,
                                                   **ERRORS}}},
        "/api/v1/sessions": {"get": {"summary": "List my sessions", "security": SECURED,
                                      "responses": {"200": {"description": "Sessions", "content": {
                                          "application/json": {"schema": {"type": "array",
                                                                          "items": _ref("Session")}}}},
                                          **AUTH, **FORCED, **ERRORS}}},
        "/api/v1/sessions/{session_id}": {"delete": {
            "summary": "End one of my sessions", "security": SECURED,
            "parameters": [{"name": "session_id", "in": "path", "required": True,
                            "schema": {"type": "string", "maxLength": 64}}],
            "responses": {"204": _resp("Ended"), "404": _resp("No such session", "Error"), **AUTH, **ERRORS}}},
        "/api/v1/sessions/revoke-others": {"post": {"summary": "End all my other sessions", "security": SECURED,
                                                     "responses": {"200": _resp("Count"), **AUTH, **ERRORS}}},
        "/api/v1/sessions/revoke-all": {"post": {"summary": "End all my sessions", "security": SECURED,
                                                  "responses": {"204": _resp("Ended"), **AUTH, **ERRORS}}},
        "/api/v1/password/change": {"post": {"summary": "Change password (ends other sessions)",
                                              "security": SECURED, "requestBody": _body("PasswordChange"),
                                              "responses": {"200": _resp("Changed; new session token", "LoginOk"),
                                                            "422": _resp("Refused", "Error"), **AUTH, **ERRORS}}},
        "/api/v1/password/reset": {"post": {"summary": "Ask for a reset link", "requestBody": _body("EmailOnly"),
                                             "responses": {"202": _resp("Sent if the account exists"), **ERRORS}}},
        "/api/v1/password/reset/confirm": {"post": {"summary": "Set a new password with a reset link token",
                                                     "requestBody": _body("PasswordReset"),
                                                     "responses": {"204": _resp("Changed"),
                                                                   "400": _resp("Bad link", "Error"),
                                                                   "422": _resp("Refused", "Error"), **ERRORS}}},
        "/api/v1/me/export": {"get": {
            "summary": "Download my data (profile, factors without secrets, sessions, login history with risk "
                       "receipts, consents, audit events about me); needs a recent sign-in",
            "security": SECURED,
            "responses": {"200": {"description": "The export (authsvc-export/1)",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          "403": _resp("reauth_required: sign in again first; or password_change_required",
                                       "Error"), **AUTH, **ERRORS}}},
        "/api/v1/me": {"delete": {
            "summary": "Delete my account and erase my personal data (password required)", "security": SECURED,
            "requestBody": _body("PasswordOnly"),
            "responses": {"204": _resp("Deleted; every token of the account is dead"),
                          "401": _resp("Not signed in, or wrong password", "Error"), **AUTH, **FORCED,
                          **ERRORS}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "authsvc account API", "version": "1"},
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"session": {"type": "http", "scheme": "bearer",
                                                       "description": "the session_token from /api/v1/login"}}},
    }
