"""TLS for the router: server contexts (TLS 1.2 and up), the SNI choice of certificate,
and the self-signed platform certificate made on first start so HTTPS works at once."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from paas.routes import Certificate


def server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """A server context for one certificate: TLS 1.2 minimum, HTTP/1.1 over ALPN."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def context_from_pem(cert: Certificate) -> ssl.SSLContext:
    """A server context for an app's certificate held in memory. `load_cert_chain` reads
    only files, so the PEM goes through a private temporary file that is removed at once."""
    fd, path = tempfile.mkstemp(prefix="paas-cert-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp makes it 0600: the key stays private
            f.write(cert.key_pem.strip() + "\n" + cert.cert_pem.strip() + "\n")
        return server_context(path, path)
    finally:
        os.unlink(path)


def sni_callback(
    choose: Callable[[str], ssl.SSLContext | None],
) -> Callable[[ssl.SSLObject, str | None, ssl.SSLContext], None]:
    """The callback the platform context calls with the name a client asked for: it swaps
    in the context `choose` gives for that name, or keeps the platform's."""

    def callback(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        if server_name:
            chosen = choose(server_name.lower().rstrip("."))
            if chosen is not None:
                sslobj.context = chosen

    return callback


def ensure_platform_certificate(cert_file: Path, key_file: Path, domain: str) -> bool:
    """Make a self-signed certificate for `domain` and `*.domain` unless one is there;
    True when one was made. Browsers will warn about it: a real one replaces the files."""
    if cert_file.exists() and key_file.exists():
        return False
    cert_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(domain), x509.DNSName(f"*.{domain}")]
    if domain != "localhost":
        names.append(x509.DNSName("localhost"))
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        # 397 days: the longest validity browsers accept, self-signed or not
        .not_valid_after(now + datetime.timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Written under temporary names and renamed, so a reader never sees half a file.
    tmp_key = key_file.with_name(key_file.name + ".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    tmp_cert = cert_file.with_name(cert_file.name + ".tmp")
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp_key, key_file)
    os.replace(tmp_cert, cert_file)
    return True
