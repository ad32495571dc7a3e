"""Google's side of GCS authentication, in front of fake-gcs-server (which accepts any bearer
token, or none): the tests' stand-in for Google's OAuth server and GKE's metadata server, and a
gateway that lets a request through to the emulator only with a token it issued.

    gcs_gateway.py PORT UPSTREAM KEY_OUT

- Makes an RSA service account key and writes it to KEY_OUT as the JSON key file
  `gcloud iam service-accounts keys create` writes, its token_uri pointing here.
- POST /token: the JWT bearer grant (RFC 7523). The assertion's RS256 signature is checked
  with the key's public half, and its iss, aud, scope, iat and exp as Google checks them;
  a token is issued for an hour.
- GET /computeMetadata/v1/instance/service-accounts/default/token: the metadata server's
  token, only with `Metadata-Flavor: Google`.
- POST /gateway/revoke: every token issued so far stops working (a revoked or expired token).
- GET /gateway/stats: how many tokens were issued, and requests refused for want of one.
- Anything else: 401 unless it carries `Authorization: Bearer <an issued token>`; then it is
  sent on to UPSTREAM and the answer returned, its Location (a resumable upload's session)
  pointing back at the address the client used.
"""

import base64
import json
import secrets
import sys
import threading
import time
import http.client
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PORT = int(sys.argv[1])
UPSTREAM = urllib.parse.urlsplit(sys.argv[2])
KEY_OUT = sys.argv[3]
HERE = f"http://127.0.0.1:{PORT}"
EMAIL = "dr-backup@test-project.iam.gserviceaccount.com"

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC = key.public_key()
with open(KEY_OUT, "w") as f:
    json.dump(
        {
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "0123456789abcdef",
            "private_key": key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
            "client_email": EMAIL,
            "client_id": "1",
            "token_uri": f"{HERE}/token",
        },
        f,
    )

lock = threading.Lock()
tokens = set()
stats = {"issued": 0, "refused": 0}


def b64decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def check_assertion(assertion):
    """Why the JWT is not a valid grant, or None."""
    try:
        head, claims, signature = assertion.split(".")
        header = json.loads(b64decode(head))
        body = json.loads(b64decode(claims))
    except Exception as e:
        return f"not a JWT: {e}"
    if header.get("alg") != "RS256":
        return f"alg {header.get('alg')}"
    try:
        PUBLIC.verify(b64decode(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return "Invalid JWT Signature."
    now = time.time()
    if body.get("iss") != EMAIL:
        return f"iss {body.get('iss')}"
    if body.get("aud") != f"{HERE}/token":
        return f"aud {body.get('aud')}"
    if "devstorage" not in body.get("scope", ""):
        return f"scope {body.get('scope')}"
    iat, exp = body.get("iat", 0), body.get("exp", 0)
    if not (iat - 300 <= now <= exp) or exp - iat > 3600:
        return f"Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe (iat {iat}, exp {exp}, now {now:.0f})"
    return None


def issue():
    token = "ya29." + secrets.token_urlsafe(32)
    with lock:
        tokens.add(token)
        stats["issued"] += 1
    return token


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("gateway: " + (fmt % args) + "\n")

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        path = urllib.parse.urlsplit(self.path).path
        if self.command == "POST" and path == "/token":
            form = urllib.parse.parse_qs(self.body().decode())
            if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
                return self.reply(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
            why = check_assertion(form.get("assertion", [""])[0])
            if why:
                return self.reply(400, {"error": "invalid_grant", "error_description": why})
            return self.reply(200, {"access_token": issue(), "expires_in": 3599, "token_type": "Bearer"})
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            self.body()
            if self.headers.get("Metadata-Flavor") != "Google":
                return self.reply(403, {"error": "missing Metadata-Flavor: Google"})
            return self.reply(200, {"access_token": issue(), "expires_in": 3599, "token_type": "Bearer"})
        if path == "/gateway/revoke":
            self.body()
            with lock:
                tokens.clear()
            return self.reply(200, {})
        if path == "/gateway/stats":
            with lock:
                return self.reply(200, dict(stats))
        body = self.body()
        auth = self.headers.get("Authorization", "")
        with lock:
            allowed = auth.startswith("Bearer ") and auth[len("Bearer "):] in tokens
            if not allowed:
                stats["refused"] += 1
        if not allowed:
            return self.reply(
                401,
                {"error": {"code": 401, "message": "Invalid Credentials", "errors": [{"reason": "authError", "message": "Invalid Credentials"}]}},
            )
        self.forward(body)

    def forward(self, body):
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            lower = name.lower()
            if lower in ("content-length", "transfer-encoding", "connection", "date", "server"):
                continue
            if lower == "location":
                # Back through whatever the client reached this by (a fault proxy in between).
                value = value.replace(f"{UPSTREAM.scheme}://{UPSTREAM.netloc}", f"http://{self.headers.get('Host', HERE[len('http://'):])}")
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
