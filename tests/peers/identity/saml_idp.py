# Test peer: a scriptable SAML 2.0 identity provider (PyPI pysaml2, signing through Debian's xmlsec1).
"""Scriptable SAML 2.0 IdP for offline tests of the gateway's service provider.

Usage: python saml_idp.py --sp-metadata FILE [--port 0] [--xmlsec1 /usr/bin/xmlsec1]
                          [--work-dir DIR]
Generates its own RSA-2048 signing key and self-signed certificate (and a second, unadvertised
key for the `other-key` mode) into --work-dir (default: a temp dir removed at exit), binds
127.0.0.1 and prints one JSON line once listening:
  {"base": "http://127.0.0.1:PORT", "entity_id": "<base>/metadata", "sso_url": "<base>/sso",
   "certificate": "<PEM>"}

GET /metadata                  the IdP's metadata (SSO: HTTP-Redirect binding).
GET /sso?SAMLRequest=..&RelayState=..
                               HTTP-Redirect AuthnRequest from an SP in --sp-metadata; signs in
                               the current user without asking and answers 200 with an HTML page
                               whose form (auto-submitted by a script) POSTs SAMLResponse and
                               RelayState to the request's AssertionConsumerServiceURL.
GET /_peer/login-as?email=A    test control: the user of the next responses (204). NameID
                               (format emailAddress) and attribute `mail` are that address.
                               Default alice@corp.example.
GET /_peer/mode?mode=M         test control: how the next responses are made (204; 400 if M is
                               unknown). Modes:
  normal              Response and Assertion signed, rsa-sha256 with sha256 digests.
  unsigned            no signature anywhere.
  sha1                Response and Assertion signed with rsa-sha1 and sha1 digests.
  sha1-digest         rsa-sha256 signatures over sha1 digests.
  assertion-only      only the Assertion signed (rsa-sha256).
  response-only       only the Response signed (rsa-sha256).
  other-key           signed (rsa-sha256) with a key that is not the advertised certificate's.
  wrong-audience      signed normally, but the Audience is another SP's entity id.
  status-error        an unsigned error Response (top-level status Responder).
  wrapped             XSW: Assertion-only signing, plus an unsigned copy of the Assertion for
                      mallory@evil.example placed before the signed one.
  wrapped-after       the same, the unsigned copy placed after the signed one.
  wrapped-extensions  the signed Assertion moved into samlp:Extensions, the unsigned copy for
                      mallory where the Assertion was.
  wrapped-object      the unsigned copy for mallory hidden in a ds:Object inside the signed
                      Assertion's Signature.
Never reaches anything but loopback; keys and responses are for tests only.
"""
import argparse
import atexit
import base64
import datetime
import html
import json
import re
import secrets
import shutil
import signal
import sys
import tempfile
import urllib.parse as up
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_REDIRECT, samlp
from saml2 import xmldsig as ds
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.server import Server

MALLORY = "mallory@evil.example"
# The SP entity id the `wrong-audience` responses are addressed to (a copy of the SP's metadata).
OTHER_SP = "urn:portcullis-test:another-sp"
SHA256 = {"sign_alg": ds.SIG_RSA_SHA256, "digest_alg": ds.DIGEST_SHA256}
SHA1 = {"sign_alg": ds.SIG_RSA_SHA1, "digest_alg": ds.DIGEST_SHA1}
SHA1_DIGEST = {"sign_alg": ds.SIG_RSA_SHA256, "digest_alg": ds.DIGEST_SHA1}
WRAPPED = ("wrapped", "wrapped-after", "wrapped-extensions", "wrapped-object")
MODES = ("normal", "unsigned", "sha1", "sha1-digest", "assertion-only", "response-only",
         "other-key", "wrong-audience", "status-error") + WRAPPED

state = {"email": "alice@corp.example", "mode": "normal"}


def make_key_pair(directory, name):
    """An RSA-2048 key and a self-signed certificate (PEM files); returns (key path, cert path, cert PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"portcullis test IdP ({name})")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(cert_pem)
    return key_path, cert_path, cert_pem.decode()


def idp_server(base, key_path, cert_path, xmlsec1, metadata_files):
    conf = IdPConfig()
    conf.load({
        "entityid": base + "/metadata",
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [(base + "/sso", BINDING_HTTP_REDIRECT)]},
            "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
            "policy": {"default": {
                "lifetime": {"minutes": 5},
                "attribute_restrictions": None,
                "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
            }},
        }},
        "key_file": str(key_path),
        "cert_file": str(cert_path),
        "xmlsec_binary": xmlsec1,
        "metadata": {"local": [str(path) for path in metadata_files]},
    })
    return conf, Server(config=conf)


def first_element(xml, local_name):
    """(start, end) of the first element named `<prefix:local_name` in `xml` (no nesting of the same name)."""
    match = re.search(r"<([A-Za-z0-9_.-]+:)?" + local_name + r"[\s>/]", xml)
    if match is None:
        raise ValueError(f"no {local_name} element")
    prefix = match.group(1) or ""
    close = f"</{prefix}{local_name}>"
    end = xml.index(close, match.start()) + len(close)
    return match.start(), end


def unsigned_copy_for(assertion, email):
    """The assertion with its Signature removed, a fresh ID, and `email` instead of the real user."""
    start, end = first_element(assertion, "Signature")
    forged = assertion[:start] + assertion[end:]
    forged = re.sub(r'\bID="[^"]*"', f'ID="_{secrets.token_hex(16)}"', forged, count=1)
    return forged.replace(state["email"], email)


def wrap(xml, mode):
    """Signature-wrapping variants of a response whose Assertion (only) is signed."""
    start, end = first_element(xml, "Assertion")
    signed = xml[start:end]
    evil = unsigned_copy_for(signed, MALLORY)
    if mode == "wrapped":
        return xml[:start] + evil + signed + xml[end:]
    if mode == "wrapped-after":
        return xml[:end] + evil + xml[end:]
    if mode == "wrapped-extensions":
        # Extensions must come right after Issuer (and before Status) in a Response.
        without = xml[:start] + evil + xml[end:]
        _, issuer_end = first_element(without, "Issuer")
        prefix = re.search(r"<([A-Za-z0-9_.-]+:)?Response[\s>]", without).group(1) or ""
        extensions = f"<{prefix}Extensions>{signed}</{prefix}Extensions>"
        return without[:issuer_end] + extensions + without[issuer_end:]
    if mode == "wrapped-object":
        sig_start, sig_end = first_element(signed, "Signature")
        signature = signed[sig_start:sig_end]
        prefix = re.match(r"<([A-Za-z0-9_.-]+:)?Signature", signature).group(1) or ""
        closing = f"</{prefix}Signature>"
        hidden = signature[: -len(closing)] + f"<{prefix}Object>{evil}</{prefix}Object>" + closing
        return xml[:start] + signed[:sig_start] + hidden + signed[sig_end:] + xml[end:]
    raise ValueError(mode)


def make_response(idp, other_idp, msg, acs):
    mode, email = state["mode"], state["email"]
    if mode == "status-error":
        response = idp.create_error_response(
            msg.id, acs, (samlp.STATUS_AUTHN_FAILED, "the test IdP refused"), sign=False)
        return str(response)
    signer, sp = idp, msg.issuer.text
    sign_response, sign_assertion, algorithms = True, True, SHA256
    if mode == "unsigned":
        sign_response, sign_assertion = False, False
    elif mode == "sha1":
        algorithms = SHA1
    elif mode == "sha1-digest":
        algorithms = SHA1_DIGEST
    elif mode in ("assertion-only",) + WRAPPED:
        sign_response = False
    elif mode == "response-only":
        sign_assertion = False
    elif mode == "other-key":
        signer = other_idp
    elif mode == "wrong-audience":
        sp = OTHER_SP
    response = signer.create_authn_response(
        identity={"mail": [email]}, in_response_to=msg.id, destination=acs, sp_entity_id=sp,
        name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
        sign_response=sign_response, sign_assertion=sign_assertion,
        authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"}, **algorithms)
    xml = str(response)
    return wrap(xml, mode) if mode in WRAPPED else xml


def post_form(acs, saml_response, relay_state):
    fields = {"SAMLResponse": base64.b64encode(saml_response.encode()).decode(),
              "RelayState": relay_state}
    inputs = "\n".join(f'<input type="hidden" name="{name}" value="{html.escape(value)}"/>'
                       for name, value in fields.items())
    return ("<!DOCTYPE html>\n<html><head><title>SAML POST</title></head><body>\n"
            f'<form method="post" action="{html.escape(acs)}">\n{inputs}\n'
            '<noscript><button type="submit">Continue</button></noscript>\n</form>\n'
            "<script>document.forms[0].submit();</script>\n</body></html>\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sp-metadata", required=True, type=Path)
    parser.add_argument("--xmlsec1", default="/usr/bin/xmlsec1")
    parser.add_argument("--work-dir", type=Path)
    args = parser.parse_args()

    # SIGTERM exits normally, so the atexit clean-up below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.work_dir is None:
        work = Path(tempfile.mkdtemp(prefix="saml-idp-"))
        atexit.register(shutil.rmtree, work, True)
    else:
        work = args.work_dir
        work.mkdir(parents=True, exist_ok=True)
    key, cert, cert_pem = make_key_pair(work, "idp")
    other_key, other_cert, _ = make_key_pair(work, "other")
    sp_metadata = args.sp_metadata.read_text()
    other_sp = work / "other-sp-metadata.xml"
    other_sp.write_text(re.sub(r'entityID="[^"]*"', f'entityID="{OTHER_SP}"', sp_metadata, count=1))
    metadata_files = [args.sp_metadata, other_sp]

    httpd = HTTPServer(("127.0.0.1", args.port), None)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    conf, idp = idp_server(base, key, cert, args.xmlsec1, metadata_files)
    _, other_idp = idp_server(base, other_key, other_cert, args.xmlsec1, metadata_files)

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status, body=b"", content_type="text/plain; charset=utf-8"):
            self.send_response(status)
            if status != 204:
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if status != 204:
                self.wfile.write(body)

        def do_GET(self):
            url = up.urlsplit(self.path)
            query = dict(up.parse_qsl(url.query))
            try:
                if url.path == "/metadata":
                    body = create_metadata_string(None, config=conf)
                    self.reply(200, body if isinstance(body, bytes) else body.encode(),
                               "application/samlmetadata+xml")
                elif url.path == "/sso":
                    self.sso(query)
                elif url.path == "/_peer/login-as":
                    if "@" not in query.get("email", ""):
                        return self.reply(400, b"email=<address> required\n")
                    state["email"] = query["email"]
                    self.reply(204)
                elif url.path == "/_peer/mode":
                    if query.get("mode") not in MODES:
                        return self.reply(400, f"mode must be one of {', '.join(MODES)}\n".encode())
                    state["mode"] = query["mode"]
                    self.reply(204)
                else:
                    self.reply(404, b"not found\n")
            except Exception as error:  # a test peer: report, keep serving
                print(f"{url.path}: {error!r}", file=sys.stderr, flush=True)
                self.reply(500, f"{error!r}\n".encode())

        def sso(self, query):
            if "SAMLRequest" not in query:
                return self.reply(400, b"SAMLRequest required\n")
            msg = idp.parse_authn_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT).message
            acs = msg.assertion_consumer_service_url
            if not acs:
                return self.reply(400, b"the AuthnRequest names no AssertionConsumerServiceURL\n")
            xml = make_response(idp, other_idp, msg, acs)
            page = post_form(acs, xml, query.get("RelayState", ""))
            self.reply(200, page.encode(), "text/html; charset=utf-8")

        def log_message(self, format, *args):
            print(f"{self.address_string()} {format % args}", file=sys.stderr, flush=True)

    httpd.RequestHandlerClass = Handler
    print(json.dumps({"base": base, "entity_id": base + "/metadata", "sso_url": base + "/sso",
                      "certificate": cert_pem}), flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
