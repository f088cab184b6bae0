"""Reaching an app: the rules for custom domains and certificates, the changes to them that
the REST API and the dashboard both make, and keeping Redis's copy.

SQLite (paas.store_routing) holds the truth; routers read the copy in Redis that
`publish_app` writes after each change and `sync_all` rebuilds on start (Redis keeps
nothing on disk).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass

import redis
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from paas import keys, routes
from paas.errors import InvalidInput
from paas.store import App, Store
from paas.store_routing import AppRouting, Domain

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_domain(raw: str, platform_domain: str) -> str:
    """`raw` as a domain an app may own: lowercase, no trailing dot, a `*.` wildcard at
    most in front; never the platform's own domain or a name under it (those are apps')."""
    name = raw.strip().lower().rstrip(".")
    labels = name.split(".")
    wildcard = labels[0] == "*"
    rest = labels[1:] if wildcard else labels
    if len(name) > 253 or len(rest) < 2 or not all(_LABEL.match(label) for label in rest):
        raise InvalidInput(
            f"{raw!r} is not a domain name; give one like www.example.com or *.example.com"
        )
    if rest[-1].isdigit() or _is_ip(name):
        raise InvalidInput(f"{raw!r} is an IP address; give a domain name")
    platform = platform_domain.lower().rstrip(".")
    if name == platform or name.endswith("." + platform) or (
        wildcard and platform.endswith("." + ".".join(rest))
    ):
        raise InvalidInput(
            f"{name} is the platform's domain or under it: apps already answer at "
            f"<app>.{platform}"
        )
    return name


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def add_domain(store: Store, r: redis.Redis, app: App, raw: str, platform_domain: str) -> Domain:
    """Give the app the custom domain `raw` (checked and normalised) and tell the routers."""
    domain = store.add_domain(app, normalise_domain(raw, platform_domain))
    publish_app(store, r, app)
    return domain


def remove_domain(store: Store, r: redis.Redis, app: App, raw: str) -> str:
    """Take the custom domain `raw` from the app and tell the routers; returns the name."""
    hostname = raw.strip().lower().rstrip(".")
    store.remove_domain(app, hostname)
    publish_app(store, r, app)
    return hostname


def set_app_routing(store: Store, r: redis.Redis, app: App, *, maintenance: bool | None = None,
                    https_redirect: bool | None = None) -> AppRouting:
    """Turn maintenance mode and/or the HTTPS redirect on or off (None: leave it as it is)
    and tell the routers."""
    if maintenance is None and https_redirect is None:
        raise InvalidInput("say whether maintenance and/or the HTTPS redirect are on or off")
    changed = store.set_app_routing(app, maintenance=maintenance, https_redirect=https_redirect)
    publish_app(store, r, app)
    return changed


def publish_app(store: Store, r: redis.Redis, app: App) -> None:
    """Copy the app's domains, maintenance and redirect to Redis for the routers."""
    routing = store.app_routing(app)
    routes.publish_settings(r, app.name, routes.RouteSettings(
        routing.domains, routing.maintenance, routing.https_redirect
    ))


def publish_certificate(store: Store, r: redis.Redis, app: App) -> None:
    stored = store.certificate(app)
    routes.publish_certificate(
        r, app.name, routes.Certificate(stored.cert_pem, stored.key_pem) if stored else None
    )


def sync_all(store: Store, r: redis.Redis) -> None:
    """Rebuild Redis's copy of every app's routing settings and certificate from SQLite."""
    everything = list(store.all_app_routing())
    pipe = r.pipeline()
    for routing in everything:
        if routing.domains or routing.maintenance or routing.https_redirect:
            pipe.hset(keys.route_settings(), routing.app, routes.RouteSettings(
                routing.domains, routing.maintenance, routing.https_redirect).to_json())
    for name, cert in store.all_certificates().items():
        pipe.hset(keys.certificates(), name,
                  routes.Certificate(cert.cert_pem, cert.key_pem).to_json())
    pipe.execute()
    for routing in everything:
        r.publish(keys.routes_channel(), routing.app)


# --- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateInfo:
    """What a user wants to see of a certificate."""

    names: tuple[str, ...]
    not_after: datetime.datetime
    issuer: str
    self_signed: bool


def check_certificate(cert_pem: str, key_pem: str) -> CertificateInfo:
    """Parse a PEM chain and key; refuse them (InvalidInput) unless the key matches the
    first certificate, so a mistake is told at `certs:add`, not at the first handshake."""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError as exc:
        raise InvalidInput(f"the certificate is not PEM: {exc}") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"the private key is not an unencrypted PEM key: {exc}"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
                      | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raise InvalidInput("the private key must be RSA, EC or EdDSA")
    leaf = chain[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            leaf.public_key().public_bytes(serialization.Encoding.DER, public):
        raise InvalidInput("the private key does not belong to the (first) certificate")
    return certificate_info(leaf)


def certificate_info(cert: x509.Certificate) -> CertificateInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = tuple(
            str(a.value) for a in cert.subject.get_attributes_for_oid(x509.OID_COMMON_NAME)
        )
    return CertificateInfo(
        names=names, not_after=cert.not_valid_after_utc,
        issuer=cert.issuer.rfc4514_string(), self_signed=cert.issuer == cert.subject,
    )
