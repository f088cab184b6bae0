"""`paas certs`, `certs:add`, `certs:remove` and `certs:redirect`: an app's TLS
certificate (chosen by SNI for all its domains) and redirecting HTTP to HTTPS."""

from __future__ import annotations

from pathlib import Path

import click

from paas.cli.common import (
    action,
    aligned,
    api,
    app_option,
    echo_json,
    fmt_time,
    json_option,
    resolve_app,
)
from paas.errors import PaasError


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PaasError(f"cannot read the {what} {path}: {exc}") from None


@click.command("certs")
@app_option
@json_option
def certs_info(app: str | None, as_json: bool) -> None:
    """Show the app's certificate and whether HTTP is redirected to HTTPS."""
    name = resolve_app(app)
    client = api()
    certs = client.get(f"apps/{name}/sni-endpoints")
    redirect = client.get(f"apps/{name}/routing")["https_redirect"]
    if as_json:
        echo_json({"certificates": certs, "https_redirect": redirect})
        return
    if not certs:
        click.echo(f"{name} has no certificate of its own: HTTPS uses the platform's. "
                   "Add one with `paas certs:add CERT KEY`.")
    for cert in certs:
        click.echo(f"=== {name} Certificate")
        click.echo(aligned([
            ("Domains", ", ".join(cert["domains"])),
            ("Expires", fmt_time(cert["expires_at"])),
            ("Issuer", cert["issuer"]),
            ("Self signed", "yes" if cert["self_signed"] else "no"),
        ]))
    click.echo(f"HTTP to HTTPS redirect: {'on' if redirect else 'off'}")


@click.command("certs:add")
@click.argument("cert_file", metavar="CERT", type=click.Path(dir_okay=False))
@click.argument("key_file", metavar="KEY", type=click.Path(dir_okay=False))
@app_option
def certs_add(cert_file: str, key_file: str, app: str | None) -> None:
    """Add (or replace) the app's certificate: CERT is the PEM chain, leaf first, and KEY
    its unencrypted PEM private key."""
    name = resolve_app(app)
    body = {"certificate_chain": _read(cert_file, "certificate"),
            "private_key": _read(key_file, "private key")}
    with action(f"Adding the certificate to {name}") as done:
        cert = api().post(f"apps/{name}/sni-endpoints", body)
        done(f"done, for {', '.join(cert['domains']) or 'no names'}")


@click.command("certs:remove")
@app_option
def certs_remove(app: str | None) -> None:
    """Remove the app's certificate; HTTPS falls back to the platform's."""
    name = resolve_app(app)
    with action(f"Removing the certificate of {name}"):
        api().delete(f"apps/{name}/sni-endpoints")


@click.command("certs:redirect")
@click.argument("state", type=click.Choice(["on", "off"]))
@app_option
def certs_redirect(state: str, app: str | None) -> None:
    """Redirect the app's HTTP requests to HTTPS (on), or serve both (off)."""
    name = resolve_app(app)
    verb = "Redirecting" if state == "on" else "No longer redirecting"
    with action(f"{verb} HTTP to HTTPS for {name}"):
        api().patch(f"apps/{name}/routing", {"https_redirect": state == "on"})
