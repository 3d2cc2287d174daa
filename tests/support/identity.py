"""What the identity tests share: a signing secret, the jwt settings, and tokens good and bad."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt

SECRET = "a-test-secret-long-enough-for-hs256-and-hs384-alike-0123456789"
ISSUER, AUDIENCE = "https://id.example", "coupon-lab"
JWT = {"auth": "jwt", "jwt_secret": SECRET, "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """Sign a token by hand, as an attacker would: PyJWT refuses to build the bad ones."""
    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if header["alg"] == "none":
        return signing + "."
    return f"{signing}.{b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())}"


def claims(sub: Any = "41", **more: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + 600, "iss": ISSUER, "aud": AUDIENCE, **more}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hs(**overrides: Any) -> str:
    return jwt.encode({**claims(), **overrides}, SECRET, algorithm="HS256")


REFUSED = {
    "no token": lambda: {},
    "not bearer": lambda: {"Authorization": f"Basic {hs()}"},
    "expired": lambda: bearer(hs(exp=int(time.time()) - 60)),
    "not yet valid": lambda: bearer(hs(nbf=int(time.time()) + 60)),
    "no exp": lambda: bearer(jwt.encode({k: v for k, v in claims().items() if k != "exp"}, SECRET)),
    "wrong aud": lambda: bearer(hs(aud="another-service")),
    "wrong iss": lambda: bearer(hs(iss="https://evil.example")),
    "bad signature": lambda: bearer(hs()[:-4] + ("AAAA" if not hs().endswith("AAAA") else "BBBB")),
    "other secret": lambda: bearer(jwt.encode(claims(), "x" * 40, algorithm="HS256")),
    "alg none": lambda: bearer(hand_signed({"alg": "none", "typ": "JWT"}, claims(), b"")),
    "HS384 with the secret": lambda: bearer(jwt.encode(claims(), SECRET, algorithm="HS384")),
    "sub not an id": lambda: bearer(hs(sub="alice")),
    "sub zero": lambda: bearer(hs(sub="0")),
    "sub past BIGINT": lambda: bearer(hs(sub=str(2**63))),
    "garbage": lambda: bearer("not.a.token"),
}
