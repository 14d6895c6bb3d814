"""The sign-in page /authorize leads to: DPG login and password → authenticator code when DPG asks → the
account when the member has several → consent naming the client and what it may do → back to the client.

Plain server-rendered HTML, no scripts, no external assets. Each pending request is bound to the browser that
first opened it (an HttpOnly cookie) and every form carries the request's CSRF token. Consent is never
skipped: with open registration any site can send a member here.
"""

from __future__ import annotations

import hmac
import html
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from mcp.server.auth.provider import construct_redirect_uri
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.hosting.auth.provider import DPGSignInProvider
from dpg_mcp.hosting.tokens import token_key

log = logging.getLogger(__name__)

COOKIE = "dpgmcp_signin"
# No scripts, no external anything; never framed (clickjacking of the consent buttons).
CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
SCOPE_WORDS = {
    "api.images.read": "see your images, sets, keywords and facets",
    "api.images.write": "edit image fields",
    "api.images.delete": "delete images",
    "api.keywords.write": "add, remove and rename keywords",
    "api.ratings.write": "set ratings",
    "api.metadata.write": "edit metadata, crops, alt-text and credits",
    "api.sets.write": "create and edit sets, their images, order and go-live",
    "api.upload": "upload images",
    "api.download": "download images and build archives",
}
BAD_LOGIN = "That login and password do not match. Check both and try again."
BAD_CODE = "That code is not right. Enter the current 6-digit code from your authenticator app."
EXPIRED = "This sign-in request has expired or is unknown. Start again from your app."
CSRF = (
    "This form could not be verified (it was sent from another page or browser). Start again from your app."
)

STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1d21}
main{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;
box-shadow:0 1px 3px #0002}
h1{font-size:1.4rem;margin-top:0}label{display:block;font-weight:600;margin:1rem 0 .25rem}
input[type=text],input[type=email],input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;
font-size:1rem;border:1px solid #767676;border-radius:4px}
button{margin-top:1.25rem;padding:.6rem 1.2rem;font-size:1rem;border-radius:4px;border:1px solid #0b57d0;
background:#0b57d0;color:#fff;cursor:pointer}button.secondary{background:#fff;color:#0b57d0}
.error{background:#fdecea;border:1px solid #b3261e;color:#8c1d18;padding:.75rem;border-radius:4px}
fieldset{border:0;padding:0;margin:0}legend{font-weight:600;margin-top:1rem}
ul{padding-left:1.25rem}.who{color:#44474e}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


class SignInPage:
    def __init__(self, provider: DPGSignInProvider) -> None:
        self.provider = provider
        self.store = provider.store
        self.action = provider.base_url + "/signin"
        self.secure = provider.base_url.startswith("https://")
        # Behind a proxy that serves dpg-mcp under a path, the browser sees /<path>/signin.
        self.cookie_path = urlsplit(provider.base_url).path.rstrip("/") + "/signin"

    def routes(self) -> list[Route]:
        return [Route("/signin", self.handle, methods=["GET", "POST"])]

    async def handle(self, request: Request) -> Response:
        if request.method == "GET":
            page_id = request.query_params.get("request", "")
            pending = await self.store.get_pending(page_id) if page_id else None
            if pending is None:
                return self._message("Sign-in expired", EXPIRED, 400)
            cookie = request.cookies.get(COOKIE, "")
            set_cookie = None
            if pending.get("browser") is None:
                # First visit: bind this request to this browser.
                cookie = cookie or secrets.token_urlsafe(32)
                set_cookie = cookie
                pending["browser"] = token_key(cookie)
                await self.store.put_pending(page_id, pending, self.provider.page_ttl_s)
            elif not hmac.compare_digest(pending["browser"], token_key(cookie)):
                return self._message("Sign-in expired", CSRF, 403)
            resp = await self._step(page_id, pending)
            if set_cookie:
                resp.set_cookie(
                    COOKIE,
                    set_cookie,
                    httponly=True,
                    samesite="lax",
                    secure=self.secure,
                    path=self.cookie_path,
                )
            return resp
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        page_id = fields.get("request", "")
        pending = await self.store.get_pending(page_id) if page_id else None
        if pending is None:
            return self._message("Sign-in expired", EXPIRED, 400)
        cookie = request.cookies.get(COOKIE, "")
        if (
            not cookie
            or pending.get("browser") is None
            or not hmac.compare_digest(pending["browser"], token_key(cookie))
            or not hmac.compare_digest(pending["csrf"], fields.get("csrf", ""))
        ):
            return self._message("Request refused", CSRF, 403)
        return await self._post(page_id, pending, fields)

    async def _post(self, page_id: str, pending: dict[str, Any], f: dict[str, str]) -> Response:
        step = pending["step"]
        try:
            if step == "login":
                login, password = f.get("login", "").strip(), f.get("password", "")
                if not login or not password:
                    return await self._step(page_id, pending, "Enter both your DPG login and your password.")
                async with self.provider.dpg() as dpg:
                    answer = await dpg.sign_in(login, password)
                pending["login"] = login
                if answer.mfa_required and answer.mfa_token:
                    pending |= {"step": "mfa", "mfa_token": answer.mfa_token}
                    return await self._save(page_id, pending)
                return await self._signed_in(page_id, pending, answer.refresh_token, answer.accounts)
            if step == "mfa":
                code = f.get("code", "").strip().replace(" ", "")
                if not code:
                    return await self._step(
                        page_id, pending, "Enter the 6-digit code from your authenticator app."
                    )
                async with self.provider.dpg() as dpg:
                    answer = await dpg.mfa(pending["mfa_token"], code)
                pending.pop("mfa_token", None)
                return await self._signed_in(page_id, pending, answer.refresh_token, answer.accounts)
            if step == "account":
                chosen = f.get("account", "")
                if chosen not in {a["uuid"] for a in pending["accounts"]}:
                    return await self._step(page_id, pending, "Choose one of the accounts listed.")
                return await self._choose(page_id, pending, chosen)
            if step == "consent":
                return await self._decide(page_id, pending, f.get("decision") == "approve")
        except DPGError as exc:
            return await self._dpg_error(page_id, pending, exc)
        return self._message("Sign-in expired", EXPIRED, 400)

    async def _signed_in(
        self, page_id: str, pending: dict[str, Any], refresh: str | None, accounts: list[Any]
    ) -> Response:
        listed = [{"uuid": a.uuid, "name": a.name or a.unique_id or a.uuid} for a in accounts if a.uuid]
        if not refresh or not listed:
            await self.store.drop_pending(page_id)
            return self._message("No account", "DPG signed you in but lists no account you can work in.", 403)
        pending |= {"dpg_refresh": refresh, "accounts": listed}
        if len(listed) == 1:
            return await self._choose(page_id, pending, listed[0]["uuid"])
        pending["step"] = "account"
        return await self._save(page_id, pending)

    async def _choose(self, page_id: str, pending: dict[str, Any], account_uuid: str) -> Response:
        async with self.provider.dpg() as dpg:
            grant = await dpg.token(pending["dpg_refresh"], account_uuid)
            # The refresh token is spent: keep the new one before anything else can fail.
            pending["dpg_refresh"] = grant.refresh_token
            await self.store.put_pending(page_id, pending, self.provider.page_ttl_s)
            me = await dpg.me(grant.access_token)
        expires = grant.expires_at or (_now() + grant.expires_in)
        pending |= {
            "step": "consent",
            "account_uuid": account_uuid,
            "dpg_access": grant.access_token,
            "dpg_access_expires": expires,
            "dpg_ttl": grant.expires_in,
            "me": me.model_dump(mode="json"),
        }
        return await self._save(page_id, pending)

    async def _decide(self, page_id: str, pending: dict[str, Any], approve: bool) -> Response:
        await self.store.drop_pending(page_id)
        redirect = pending["redirect_uri"]
        if not approve:
            # The DPG tokens of this sign-in are dropped with the request: nothing was granted.
            return RedirectResponse(
                construct_redirect_uri(
                    redirect,
                    error="access_denied",
                    error_description="the member denied access",
                    state=pending["state"],
                ),
                status_code=303,
            )
        code, _ = await self.provider.new_grant(pending)
        return RedirectResponse(
            construct_redirect_uri(redirect, code=code, state=pending["state"]), status_code=303
        )

    async def _dpg_error(self, page_id: str, pending: dict[str, Any], exc: DPGError) -> Response:
        if exc.status == 429:
            wait = int(exc.retry_after or 60)
            return await self._step(page_id, pending, f"Too many attempts at DPG. Try again in {wait} s.")
        if isinstance(exc, TransportFailure) or exc.status >= 500:
            return await self._step(
                page_id, pending, "DPG cannot be reached right now. Try again in a minute."
            )
        if pending["step"] == "login" and exc.status in (400, 401, 403, 404, 422):
            return await self._step(page_id, pending, BAD_LOGIN)
        if pending["step"] == "mfa":
            if exc.field == "mfa_token":
                pending = {**pending, "step": "login"}
                pending.pop("mfa_token", None)
                await self.store.put_pending(page_id, pending, self.provider.page_ttl_s)
                return await self._step(
                    page_id, pending, "The sign-in took too long. Enter your login again."
                )
            return await self._step(page_id, pending, BAD_CODE)
        return await self._step(page_id, pending, f"DPG refused: {exc.message}")

    # ---- rendering --------------------------------------------------------------------------------------
    async def _save(self, page_id: str, pending: dict[str, Any]) -> Response:
        await self.store.put_pending(page_id, pending, self.provider.page_ttl_s)
        return RedirectResponse(f"{self.action}?request={page_id}", status_code=303)

    def _form(self, page_id: str, pending: dict[str, Any], inner: str) -> str:
        return (
            f'<form method="post" action="{_e(self.action)}">'
            f'<input type="hidden" name="request" value="{_e(page_id)}">'
            f'<input type="hidden" name="csrf" value="{_e(pending["csrf"])}">{inner}</form>'
        )

    async def _step(self, page_id: str, pending: dict[str, Any], error: str | None = None) -> Response:
        step = pending["step"]
        err = f'<p class="error" role="alert" id="error">{_e(error)}</p>' if error else ""
        described = ' aria-describedby="error"' if error else ""
        if step == "login":
            title = "Sign in with your DPG login"
            body = self._form(
                page_id,
                pending,
                f'{err}<label for="login">DPG login (email)</label>'
                f'<input type="email" id="login" name="login" autocomplete="username" required autofocus'
                f' value="{_e(pending.get("login", ""))}"{described}>'
                f'<label for="password">Password</label>'
                f'<input type="password" id="password" name="password" autocomplete="current-password"'
                f" required{described}>"
                f'<button type="submit">Continue</button>',
            )
        elif step == "mfa":
            title = "Enter your authenticator code"
            body = self._form(
                page_id,
                pending,
                f"{err}<p>Your DPG account uses two-factor sign-in.</p>"
                f'<label for="code">6-digit code from your authenticator app</label>'
                f'<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code"'
                f' pattern="[0-9 ]*" maxlength="7" required autofocus{described}>'
                f'<button type="submit">Verify</button>',
            )
        elif step == "account":
            title = "Choose the account to work in"
            options = "".join(
                f'<div><input type="radio" id="acc{i}" name="account" value="{_e(a["uuid"])}"'
                f'{" checked" if i == 0 else ""}><label for="acc{i}" style="display:inline;font-weight:400">'
                f"{_e(a['name'])}</label></div>"
                for i, a in enumerate(pending["accounts"])
            )
            body = self._form(
                page_id,
                pending,
                f"{err}<fieldset><legend>Your DPG accounts</legend>{options}</fieldset>"
                f'<button type="submit">Continue</button>',
            )
        else:
            title = "Allow access to your gallery?"
            body = await self._consent(page_id, pending, err)
        return self._html(title, body)

    async def _consent(self, page_id: str, pending: dict[str, Any], err: str) -> str:
        client = await self.store.get_client(pending["client_id"]) or {}
        name = client.get("client_name") or "An app that gave no name"
        host = urlsplit(pending["redirect_uri"]).netloc or urlsplit(pending["redirect_uri"]).scheme + ":"
        me = pending.get("me") or {}
        caps = [str(c) for c in me.get("capabilities") or []]
        wanted = pending.get("scopes")
        granted = [c for c in caps if not wanted or c in wanted]
        items = "".join(f"<li>{_e(SCOPE_WORDS.get(c, c))}</li>" for c in granted) or "<li>nothing</li>"
        user = (me.get("user") or {}).get("name") or pending.get("login", "")
        account = (me.get("account") or {}).get("name") or ""
        return self._form(
            page_id,
            pending,
            f"{err}<p><strong>{_e(name)}</strong> (returning to <strong>{_e(host)}</strong>) asks to work in "
            f"your DPG gallery as you.</p>"
            f'<p class="who">Signed in as {_e(user)}, account {_e(account)}.</p>'
            f"<p>It will be able to:</p><ul>{items}</ul>"
            f"<p>Only allow apps you trust. You can revoke access later from the app.</p>"
            f'<button type="submit" name="decision" value="approve">Allow</button> '
            f'<button type="submit" name="decision" value="deny" class="secondary">Deny</button>',
        )

    def _message(self, title: str, text: str, status: int) -> Response:
        return self._html(title, f'<p class="error" role="alert">{_e(text)}</p>', status)

    def _html(self, title: str, body: str, status: int = 200) -> HTMLResponse:
        doc = (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)} · dpg-mcp</title><style>{STYLE}</style></head>"
            f"<body><main><h1>{_e(title)}</h1>{body}</main></body></html>"
        )
        return HTMLResponse(
            doc,
            status_code=status,
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": CSP,
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
            },
        )


def _now() -> float:
    return time.time()
