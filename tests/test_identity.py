"""jwt mode: only a verified token's user may claim, and read, its coupon (docs/identity.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from flask.testing import FlaskClient

from coupon.api import identity
from coupon.api.identity import Minter
from coupon.core.config import Config, ConfigError
from tests.support.api import AUTH, assert_error, create
from tests.support.identity import JWT, REFUSED, SECRET, bearer, claims, hand_signed, hs


@pytest.fixture()
def jwt_client(make_client: Callable[..., FlaskClient]) -> FlaskClient:
    return make_client(**JWT)


def test_a_valid_token_issues_for_its_sub_with_or_without_a_body(jwt_client: FlaskClient) -> None:
    coupon_id = create(jwt_client, 5, strategy="lua")["id"]
    empty = jwt_client.post(f"/coupons/{coupon_id}/issue", headers=bearer(hs(sub="41")))
    assert (empty.status_code, empty.get_json()["user_id"]) == (201, 41)
    same = jwt_client.post(f"/coupons/{coupon_id}/issue", json={"user_id": 42}, headers=bearer(hs(sub="42")))
    assert (same.status_code, same.get_json()["user_id"]) == (201, 42)
    again = jwt_client.post(f"/coupons/{coupon_id}/issue", json={}, headers=bearer(hs(sub="42")))
    assert (again.status_code, again.get_json()["result"]) == (409, "already_issued")


@pytest.mark.parametrize("case", REFUSED)
def test_issue_without_a_valid_token_is_401(jwt_client: FlaskClient, case: str) -> None:
    coupon_id = create(jwt_client, 5)["id"]
    response = jwt_client.post(f"/coupons/{coupon_id}/issue", json={"user_id": 41}, headers=REFUSED[case]())
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_body_user_id_that_differs_from_the_tokens_is_403(jwt_client: FlaskClient) -> None:
    coupon_id = create(jwt_client, 5)["id"]
    response = jwt_client.post(
        f"/coupons/{coupon_id}/issue", json={"user_id": 7}, headers=bearer(hs(sub="41"))
    )
    assert_error(response, 403)
    malformed = jwt_client.post(f"/coupons/{coupon_id}/issue", json={"user_id": 0}, headers=bearer(hs()))
    assert_error(malformed, 400, "user_id")
    assert jwt_client.get(f"/coupons/{coupon_id}").get_json()["issued_quantity"] == 0


def test_the_status_answers_the_tokens_own_user_and_the_admin_only(jwt_client: FlaskClient) -> None:
    coupon_id = create(jwt_client, 5, strategy="lua")["id"]
    assert jwt_client.post(f"/coupons/{coupon_id}/issue", headers=bearer(hs(sub="41"))).status_code == 201
    own = jwt_client.get(f"/coupons/{coupon_id}/issues/41", headers=bearer(hs(sub="41")))
    assert (own.status_code, own.get_json()) == (200, {"status": "issued"})
    assert_error(jwt_client.get(f"/coupons/{coupon_id}/issues/41", headers=bearer(hs(sub="42"))), 403)
    assert_error(jwt_client.get(f"/coupons/{coupon_id}/issues/41"), 401)
    assert_error(jwt_client.get(f"/coupons/{coupon_id}/issues/41", headers=bearer(hs(aud="x"))), 401)
    admin = jwt_client.get(f"/coupons/{coupon_id}/issues/41", headers=AUTH)
    assert (admin.status_code, admin.get_json()) == (200, {"status": "issued"})


def test_body_mode_still_takes_the_bodys_user_and_ignores_tokens(client: FlaskClient) -> None:
    coupon_id = create(client, 5, strategy="lua")["id"]
    response = client.post(f"/coupons/{coupon_id}/issue", json={"user_id": 9}, headers=bearer("junk"))
    assert (response.status_code, response.get_json()["user_id"]) == (201, 9)
    assert client.get(f"/coupons/{coupon_id}/issues/9").get_json() == {"status": "issued"}


def pem_public(private: Any) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pem_private(private: Any) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [("rsa", "RS256"), ("ed25519", "EdDSA")],
)
def test_a_public_key_pins_its_own_algorithm(
    make_client: Callable[..., FlaskClient], tmp_path: Path, kind: str, algorithm: str
) -> None:
    private = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ed25519.Ed25519PrivateKey.generate()
    public_path = tmp_path / "public.pem"
    public_path.write_bytes(pem_public(private))
    client = make_client(auth="jwt", jwt_public_key=public_path)
    coupon_id = create(client, 5)["id"]
    path = f"/coupons/{coupon_id}/issue"
    minter = Minter.for_config(Config(jwt_public_key=public_path), pem_private(private))
    assert minter.algorithm == algorithm
    good = client.post(path, headers=bearer(minter.mint(41)))
    assert (good.status_code, good.get_json()["user_id"]) == (201, 41)
    # The HS/RS confusion: HS256 "signed" with the public key's PEM as the shared secret.
    confused = hand_signed(
        {"alg": "HS256", "typ": "JWT"}, claims(aud=None, iss=None), public_path.read_bytes()
    )
    assert_error(client.post(path, headers=bearer(confused)), 401)
    assert_error(client.post(path, headers=bearer(hand_signed({"alg": "none"}, claims(), b""))), 401)
    stranger = (
        rsa.generate_private_key(65537, 2048) if kind == "rsa" else ed25519.Ed25519PrivateKey.generate()
    )
    forged = jwt.encode(claims(sub="43"), stranger, algorithm=algorithm)
    assert_error(client.post(path, headers=bearer(forged)), 401)


def test_a_jwks_picks_the_key_by_kid(make_client: Callable[..., FlaskClient], tmp_path: Path) -> None:
    private = rsa.generate_private_key(65537, 2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    client = make_client(auth="jwt", jwt_jwks=jwks)
    coupon_id = create(client, 5)["id"]
    path = f"/coupons/{coupon_id}/issue"
    minter = Minter.for_config(Config(), pem_private(private), kid="k1")
    assert client.post(path, headers=bearer(minter.mint(41))).status_code == 201
    unknown_kid = Minter.for_config(Config(), pem_private(private), kid="k2").mint(42)
    assert_error(client.post(path, headers=bearer(unknown_kid)), 401)


def test_a_configured_user_claim_names_the_user(make_client: Callable[..., FlaskClient]) -> None:
    client = make_client(auth="jwt", jwt_secret=SECRET, jwt_user_claim="uid")
    coupon_id = create(client, 5)["id"]
    token = jwt.encode({"uid": 77, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    response = client.post(f"/coupons/{coupon_id}/issue", headers=bearer(token))
    assert (response.status_code, response.get_json()["user_id"]) == (201, 77)


def test_a_verified_token_is_remembered_until_it_expires(
    jwt_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    coupon_id = create(jwt_client, 100)["id"]
    decoded: list[str] = []
    decoder = jwt_client.application.extensions["coupon.gate"].verifier.decoder
    real = decoder.decode
    monkeypatch.setattr(
        decoder, "decode", lambda token, *a, **k: decoded.append(token) or real(token, *a, **k)
    )
    token = hs(sub="41", exp=int(time.time()) + 30)
    for _ in range(3):
        jwt_client.get(f"/coupons/{coupon_id}/issues/41", headers=bearer(token))
    assert decoded == [token]
    # Past its exp (and the leeway) the remembered token counts for nothing: verified again.
    later = time.time() + 30 + Config().jwt_leeway + 1
    monkeypatch.setattr(identity.time, "time", lambda: later)
    jwt_client.get(f"/coupons/{coupon_id}/issues/41", headers=bearer(token))
    assert decoded == [token, token]


def test_the_token_cache_is_bounded(make_client: Callable[..., FlaskClient]) -> None:
    client = make_client(**JWT, token_cache_size=3)
    coupon_id = create(client, 100)["id"]
    for user in range(1, 8):
        client.get(f"/coupons/{coupon_id}/issues/{user}", headers=bearer(hs(sub=str(user))))
    verifier = client.application.extensions["coupon.gate"].verifier
    assert [user for user, _ in verifier.cache.values()] == [5, 6, 7]


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"jwt_secret": SECRET, "jwt_jwks": Path("/nonexistent")},
        {"jwt_secret": "short"},
        {"jwt_public_key": Path("/nonexistent/public.pem")},
    ],
)
def test_jwt_mode_refuses_to_start_without_exactly_one_good_key(
    make_client: Callable[..., FlaskClient], settings: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError):
        make_client(auth="jwt", **settings)


def test_a_service_on_real_servers_needs_the_mode_said(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="COUPON_AUTH"):
        Config(database_url="mysql+pymysql://u@db/x", redis_url="redis://r").require_auth_mode()
    Config(database_url="mysql+pymysql://u@db/x", auth="body").require_auth_mode()
    Config().require_auth_mode()  # the embedded quick start: body mode
    assert Config().auth_mode == "body"
    monkeypatch.setenv("COUPON_AUTH", "JWT")
    assert Config.from_env().auth == "jwt"
    monkeypatch.setenv("COUPON_AUTH", "yes")
    with pytest.raises(ConfigError, match="COUPON_AUTH"):
        Config.from_env()


def test_gunicorn_on_real_servers_without_the_mode_refuses_to_start(backend: Any, redis_server: str) -> None:
    import os
    import subprocess
    import sys

    from coupon.core.config import PROJECT_ROOT
    from coupon.lab.drive.serve import free_port

    env = {name: value for name, value in os.environ.items() if not name.startswith("COUPON_")}
    env.update(
        COUPON_DATABASE_URL=backend.url,
        COUPON_REDIS_URL=redis_server,
        COUPON_ADMIN_TOKEN="t",
        COUPON_BIND=f"127.0.0.1:{free_port()}",
    )
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "COUPON_AUTH must be set" in done.stderr, done.stderr[-2000:]


def test_the_startup_line_says_the_mode() -> None:
    from coupon.api.gate import describe

    assert describe(Config()).startswith("identity: body mode")
    line = describe(Config(auth="jwt", jwt_secret=SECRET, user_rate_limit="20/minute"))
    assert (
        line
        == "identity: jwt mode: the user id is the bearer token's sub (HS256); per-user issue limit 20/minute"
    )


def test_flask_token_mints_what_the_service_accepts(make_client: Callable[..., FlaskClient]) -> None:
    client = make_client(**JWT)
    result = client.application.test_cli_runner().invoke(args=["token", "42", "--ttl", "60"])
    assert result.exit_code == 0, result.output
    token = result.stdout.splitlines()[0]
    assert "curl" in result.output and f"Bearer {token}" in result.output
    coupon_id = create(client, 5)["id"]
    answer = client.post(f"/coupons/{coupon_id}/issue", headers=bearer(token))
    assert (answer.status_code, answer.get_json()["user_id"]) == (201, 42)
    keyless = make_client().application.test_cli_runner().invoke(args=["token", "42"])
    assert keyless.exit_code != 0 and "COUPON_JWT_SECRET" in keyless.output
