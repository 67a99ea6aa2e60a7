"""Sign-in links: the bank's app backend opens the hub's user page for one of its users."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from ..web.sessions import WebNotConfigured, make_sign_in_token
from .accounts import require_account
from .auth import current_hub
from .errors import ApiError
from .routing import ApiBlueprint
from .schemas import Strict

bp = ApiBlueprint("sign_in", __name__, tag="web",
                  description="Sign-in links to the hub's own user page (docs/web.md).")


class SignInLinkBodySchema(Strict):
    ttl_s = fields.Integer(load_default=None, strict=True, validate=validate.Range(30, 86_400), metadata={
        "description": "How long the link may be opened, in seconds (default `[web] sign_in_link_ttl_s`)."})


class SignInLinkSchema(Schema):
    account = fields.String(required=True)
    url = fields.String(required=True, metadata={
        "description": "Path of the link (`/sign-in/<token>`), to append to the hub's public address."})
    expires_at = fields.DateTime(required=True)


@bp.operation("/accounts/<account_id>/sign-in-links", "POST", summary="A link that opens the user page",
              description="A signed link, valid until `expires_at`, that opens the hub's page (`/`) signed in "
                          "as this account: for the bank's app to show the page in a web view after its own "
                          "login. The session it starts lasts `[web] session_ttl_s`. Treat the link as a "
                          "password: hand it only to the signed-in user.",
              scope="accounts:write", body=SignInLinkBodySchema, response=SignInLinkSchema,
              success={201: "The link."},
              errors={404: "No such account (`not_found`).", 422: "Invalid `ttl_s` (`validation_error`).",
                      503: "The web secret is unset (`web_not_configured`)."})
def create_link(account_id: str, body: dict[str, Any]) -> Any:
    require_account(account_id)
    try:
        token, expires = make_sign_in_token(current_hub(), account_id, body.get("ttl_s"))
    except WebNotConfigured as exc:
        raise ApiError(503, "web_not_configured", str(exc)) from None
    return {"account": account_id, "url": f"/sign-in/{token}", "expires_at": expires}, 201
