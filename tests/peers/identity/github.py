# Test peer: a GitHub-shaped OAuth App (authorize + access_token) and REST API (/user, /user/emails), Python 3 stdlib only.
"""GitHub-shaped OAuth App + REST peer for offline tests.

Usage: python3 github.py --client-id ID --client-secret SECRET [--port 0]
Binds 127.0.0.1 and prints one JSON line, {"base": "http://127.0.0.1:PORT"}, once listening.

GET  /login/oauth/authorize      auto-approves. Needs client_id (else 404), redirect_uri (else
                                 400), code_challenge + code_challenge_method=S256 (else a
                                 redirect carrying error=invalid_request). `login` picks the
                                 fixture user, else the default. Redirects with code and state.
POST /login/oauth/access_token   form body; client auth by HTTP Basic or client_id+client_secret
                                 in the body (not both). Code: single use (consumed by any
                                 authenticated attempt), 10 minutes, same client, redirect_uri
                                 equal, PKCE S256. JSON if Accept has application/json, else
                                 form-encoded. Errors are HTTP 200 + {"error", "error_description",
                                 "error_uri"}, like GitHub.
GET  /user, /user/emails         Authorization: Bearer <token> or token <token>; 401
                                 {"message": "Bad credentials"} otherwise. /user/emails needs
                                 scope user:email or user (404 like GitHub otherwise).
GET  /_peer/login-as?login=L     test control: sets the default user (204; 404 if unknown).
"""
import argparse
import base64
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
import urllib.parse as up
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOREPLY = "users.noreply.github.com"


def mail(email, primary, verified, visibility=None):
    return {"email": email, "primary": primary, "verified": verified, "visibility": visibility}


# /user `email` is the public profile email (may be null, may be unverified); /user/emails is the truth.
USERS = {
    "alice": {"id": 1001, "name": "Alice", "email": None, "emails": [
        mail("alice@corp.example", True, True, "private"),
        mail(f"1001+alice@{NOREPLY}", False, True)]},
    # Account-takeover fixture: claims alice's address as primary but never verified it.
    "mallory": {"id": 1002, "name": "Mallory", "email": "alice@corp.example", "emails": [
        mail("alice@corp.example", True, False, "public"),
        mail("mallory@evil.example", False, True)]},
    "nomail": {"id": 1003, "name": None, "email": None, "emails": [
        mail(f"1003+nomail@{NOREPLY}", True, True)]},
    "bob": {"id": 1004, "name": "Bob", "email": "bob@other.example", "emails": [
        mail("bob@other.example", True, True, "public"),
        mail("bob@corp.example", False, True)]},
}
CODE_TTL = 600
DOCS = "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
ERRORS = {
    "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
    "redirect_uri_mismatch": "The redirect_uri MUST match the registered callback URL for this application.",
    "bad_verification_code": "The code passed is incorrect or expired.",
    "unsupported_grant_type": "The grant type is not supported.",
}

state = {"default": "alice", "codes": {}, "tokens": {}}
lock = threading.Lock()


def s256(verifier):
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def same(a, b):
    return hmac.compare_digest(a.encode(), b.encode())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, code, body, ctype="application/json; charset=utf-8", headers=()):
        data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, uri, params):
        sep = "&" if up.urlparse(uri).query else "?"
        self.send(302, b"", "text/html; charset=utf-8", [("Location", uri + sep + up.urlencode(params))])

    def log_message(self, fmt, *args):
        sys.stderr.write("github-peer: " + (fmt % args) + "\n")

    # --- GET ----------------------------------------------------------------------------------
    def do_GET(self):
        url = up.urlparse(self.path)
        q = dict(up.parse_qsl(url.query))
        if url.path == "/login/oauth/authorize":
            return self.authorize(q)
        if url.path == "/_peer/login-as":
            if q.get("login") not in USERS:
                return self.send(404, {"message": "unknown login"})
            with lock:
                state["default"] = q["login"]
            return self.send(204, b"")
        if url.path in ("/user", "/user/emails"):
            return self.api(url.path)
        self.send(404, {"message": "Not Found"})

    def authorize(self, q):
        if q.get("client_id") != ARGS.client_id:
            return self.send(404, {"message": "Not Found"})  # GitHub shows a 404 page
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri:
            return self.send(400, {"message": "redirect_uri is required by this peer"})
        extra = {"state": q["state"]} if "state" in q else {}
        if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            return self.redirect(redirect_uri, {
                "error": "invalid_request",
                "error_description": "code_challenge and code_challenge_method=S256 are required",
                **extra})
        login = q.get("login")
        with lock:
            if login not in USERS:
                if login:
                    self.log_message("login %s unknown, using %s", login, state["default"])
                login = state["default"]
            code = secrets.token_hex(10)
            state["codes"][code] = {
                "login": login, "client_id": q["client_id"], "redirect_uri": redirect_uri,
                "challenge": q["code_challenge"], "scope": q.get("scope", ""),
                "expires": time.time() + CODE_TTL}
        self.redirect(redirect_uri, {"code": code, **extra})

    def api(self, path):
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        with lock:
            grant = state["tokens"].get(token.strip()) if scheme.lower() in ("bearer", "token") else None
        if grant is None:
            return self.send(401, {"message": "Bad credentials"})
        user = USERS[grant["login"]]
        scopes = grant["scopes"]
        hdrs = [("X-OAuth-Scopes", ", ".join(scopes))]
        if path == "/user":
            login = grant["login"]
            return self.send(200, {
                "login": login, "id": user["id"], "node_id": f"U_peer{user['id']}", "type": "User",
                "site_admin": False, "name": user["name"], "email": user["email"],
                "avatar_url": f"{BASE}/avatars/{login}", "html_url": f"{BASE}/{login}"}, headers=hdrs)
        if not {"user:email", "user"} & set(scopes):
            return self.send(404, {"message": "Not Found"}, headers=hdrs)
        self.send(200, user["emails"], headers=hdrs)

    # --- POST ---------------------------------------------------------------------------------
    def do_POST(self):
        url = up.urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        if url.path != "/login/oauth/access_token":
            return self.send(404, {"message": "Not Found"})
        body = self.exchange(dict(up.parse_qsl(raw)))
        if "error" in body:
            err = body["error"]
            body = {"error": err, "error_description": body.get("error_description", ERRORS[err]),
                    "error_uri": DOCS + "#" + err.replace("_", "-")}
        self.log_message("access_token -> %s", body.get("error", "token issued"))
        if "application/json" in (self.headers.get("Accept") or ""):
            return self.send(200, body)  # GitHub answers errors with HTTP 200 too
        self.send(200, up.urlencode(body), "application/x-www-form-urlencoded; charset=utf-8")

    def exchange(self, f):
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("basic "):
            if "client_secret" in f:
                return {"error": "incorrect_client_credentials"}  # two mechanisms at once
            try:
                cid, _, secret = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
            except ValueError:
                return {"error": "incorrect_client_credentials"}
            cid, secret = up.unquote_plus(cid), up.unquote_plus(secret)
            if f.get("client_id", cid) != cid:
                return {"error": "incorrect_client_credentials"}
        else:
            cid, secret = f.get("client_id", ""), f.get("client_secret", "")
        if not (same(cid, ARGS.client_id) and same(secret, ARGS.client_secret)):
            return {"error": "incorrect_client_credentials"}
        if f.get("grant_type", "authorization_code") != "authorization_code":
            return {"error": "unsupported_grant_type"}
        with lock:
            code = state["codes"].pop(f.get("code", ""), None)  # single use, even on failure
        if code is None or code["expires"] < time.time() or code["client_id"] != cid:
            return {"error": "bad_verification_code"}
        if f.get("redirect_uri") != code["redirect_uri"]:
            return {"error": "redirect_uri_mismatch"}
        verifier = f.get("code_verifier", "")
        if not verifier or not same(s256(verifier), code["challenge"]):
            return {"error": "bad_verification_code",
                    "error_description": "The code_verifier does not match the code_challenge."}
        scopes = [s for s in code["scope"].replace(",", " ").split() if s]
        token = "gho_" + secrets.token_urlsafe(27)
        with lock:
            state["tokens"][token] = {"login": code["login"], "scopes": scopes}
        return {"access_token": token, "token_type": "bearer", "scope": ",".join(scopes)}


def main():
    global ARGS, BASE
    parser = argparse.ArgumentParser(description="GitHub-shaped OAuth App + REST test peer")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--port", type=int, default=0)
    ARGS = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    BASE = f"http://127.0.0.1:{server.server_address[1]}"
    print(json.dumps({"base": BASE}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
