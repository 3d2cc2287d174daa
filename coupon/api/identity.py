"""Who the caller is: a bearer JWT verified with PyJWT against the one configured key.

The key decides the algorithm (a secret: HS256; a PEM public key: RS256 or EdDSA by its kind;
a JWKS: each key's own), so a token that names another (``none``, HS256 signed with a public
key) is refused before its signature is looked at. Nothing here knows about Flask.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from coupon.api import inputs
from coupon.core.config import Config, ConfigError

# Shorter shared secrets can be guessed offline from one token (RFC 7518 3.2: at least 256 bits).
MIN_SECRET_BYTES = 32
PUBLIC_KEY_ALGORITHMS = {
    rsa.RSAPublicKey: "RS256",
    ed25519.Ed25519PublicKey: "EdDSA",
    ec.EllipticCurvePublicKey: "ES256",
}


class Unauthenticated(Exception):
    """Raised for a request without a valid bearer token (answered 401)."""


class Forbidden(Exception):
    """Raised when a valid token asks for another user than its own (answered 403)."""


def bearer(authorization: str | None) -> str:
    """Return the token of an `Authorization: Bearer <token>` header, or ''."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@dataclass(frozen=True)
class Key:
    """One verification key and the only algorithm a token checked with it may name."""

    key: Any
    algorithm: str


def _public_key(pem: bytes) -> Key:
    loaded = load_pem_public_key(pem)
    for kind, algorithm in PUBLIC_KEY_ALGORITHMS.items():
        if isinstance(loaded, kind):
            return Key(loaded, algorithm)
    raise ConfigError(f"COUPON_JWT_PUBLIC_KEY: unsupported key type {type(loaded).__name__}")


def load_keys(config: Config) -> dict[str | None, Key]:
    """Read jwt mode's keys by kid (None: the one key); exactly one source must be set."""
    sources = [config.jwt_secret, config.jwt_public_key, config.jwt_jwks]
    if sum(source is not None for source in sources) != 1:
        raise ConfigError(
            "COUPON_AUTH=jwt needs exactly one of COUPON_JWT_SECRET, COUPON_JWT_PUBLIC_KEY, COUPON_JWT_JWKS"
        )
    try:
        if config.jwt_secret is not None:
            if len(config.jwt_secret.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(f"COUPON_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
            return {None: Key(config.jwt_secret.encode(), "HS256")}
        if config.jwt_public_key is not None:
            return {None: _public_key(config.jwt_public_key.read_bytes())}
        assert config.jwt_jwks is not None
        jwks = jwt.PyJWKSet.from_json(config.jwt_jwks.read_text())
    except (OSError, ValueError, jwt.PyJWKError, jwt.PyJWKSetError) as exc:
        raise ConfigError(f"jwt key unreadable: {exc}") from exc
    keys: dict[str | None, Key] = {}
    for jwk in jwks.keys:
        if jwk.key_type == "oct":
            raise ConfigError("COUPON_JWT_JWKS holds public keys only; a secret goes in COUPON_JWT_SECRET")
        keys[jwk.key_id] = Key(jwk.key, jwk.algorithm_name)
    return keys


class Verifier:
    """Verify bearer tokens and return the user id they carry; remember the verified ones."""

    def __init__(self, config: Config) -> None:
        self.keys = load_keys(config)
        self.issuer = config.jwt_issuer
        self.audience = config.jwt_audience
        self.claim = config.jwt_user_claim
        self.leeway = config.jwt_leeway
        self.cache_size = config.token_cache_size
        # token -> (user id, instant its exp passes), oldest first. An OrderedDict: dropping a
        # plain dict's first key scans past every key deleted before it, O(size) once full.
        self.cache: OrderedDict[str, tuple[int, float]] = OrderedDict()
        # One decoder with its options set once: less merging per token than jwt.decode.
        self.decoder = jwt.PyJWT({"require": ["exp", self.claim], "verify_aud": self.audience is not None})

    def user_of(self, authorization: str | None) -> int:
        """Return the user id of a valid bearer token; raise Unauthenticated otherwise."""
        token = bearer(authorization)
        if not token:
            raise Unauthenticated("a bearer token is required")
        known = self.cache.get(token)
        if known is not None and time.time() < known[1]:
            return known[0]
        claims = self._verify(token)
        user = self._user(claims.get(self.claim))
        self._remember(token, user, float(claims["exp"]) + self.leeway)
        return user

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid") if None not in self.keys else None
            key = self.keys.get(kid)
            if key is None:
                raise Unauthenticated("the token's key is unknown")
            return self.decoder.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from None

    def _user(self, value: Any) -> int:
        # `sub` is a string (RFC 7519); a number is taken too, within the ids' own range.
        user = inputs.canonical_id(value) if isinstance(value, str) else value
        if isinstance(user, bool) or not isinstance(user, int) or not 0 < user <= inputs.MAX_ID:
            raise Unauthenticated(f"the token's {self.claim} is not a user id")
        return user

    def _remember(self, token: str, user: int, until: float) -> None:
        if self.cache_size <= 0:
            return
        if len(self.cache) >= self.cache_size:
            self.cache.popitem(last=False)  # the oldest: likely expired or done
        self.cache[token] = (user, until)


PRIVATE_KEY_ALGORITHMS = {
    rsa.RSAPrivateKey: "RS256",
    ed25519.Ed25519PrivateKey: "EdDSA",
    ec.EllipticCurvePrivateKey: "ES256",
}


@dataclass(frozen=True)
class Minter:
    """Sign tokens the configured service accepts: for development, tests and the lab's crowd."""

    key: Any
    algorithm: str
    issuer: str | None = None
    audience: str | None = None
    kid: str | None = None
    claim: str = "sub"

    @classmethod
    def for_config(cls, config: Config, private_key: bytes | None = None, kid: str | None = None) -> Minter:
        """Sign with the service's secret, or with the private half of its public key (PEM)."""
        if private_key is not None:
            loaded = load_pem_private_key(private_key, password=None)
            algorithm = next(
                (alg for kind, alg in PRIVATE_KEY_ALGORITHMS.items() if isinstance(loaded, kind)), None
            )
            if algorithm is None:
                raise ConfigError(f"unsupported private key type {type(loaded).__name__}")
            key: Any = loaded
        elif config.jwt_secret is not None:
            key, algorithm = config.jwt_secret.encode(), "HS256"
        else:
            raise ConfigError("minting needs COUPON_JWT_SECRET or the private key of COUPON_JWT_PUBLIC_KEY")
        return cls(key, algorithm, config.jwt_issuer, config.jwt_audience, kid, config.jwt_user_claim)

    def mint(self, user_id: int, ttl: float = 3600.0, now: float | None = None) -> str:
        """Return a signed token for user_id, valid from now for ttl seconds."""
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {self.claim: str(user_id), "iat": issued, "exp": issued + int(ttl)}
        if self.issuer:
            claims["iss"] = self.issuer
        if self.audience:
            claims["aud"] = self.audience
        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)
