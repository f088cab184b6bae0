"""The `paas` click group: every command, and the one place errors become a clean line."""

from __future__ import annotations

import difflib
import sys
from typing import Any

import click

from paas import __version__
from paas.cli.accounts import (
    access_add,
    access_list,
    access_remove,
    access_update,
    apps_transfer,
    audit_list,
    tokens_create,
    tokens_list,
    tokens_revoke,
    users_add,
    users_list,
)
from paas.cli.apps import apps_create, apps_destroy, apps_info, apps_list
from paas.cli.auth import login
from paas.cli.buildpacks import (
    buildpacks_add,
    buildpacks_clear,
    buildpacks_list,
    buildpacks_remove,
    buildpacks_set,
    builds_cache_purge,
)
from paas.cli.certs import certs_add, certs_info, certs_redirect, certs_remove
from paas.cli.config_vars import config_get, config_set, config_show, config_unset
from paas.cli.deploys import events_list, ps_set, ps_stop, releases_info, releases_output
from paas.cli.domains import domains_add, domains_list, domains_remove
from paas.cli.gitremote import git_remote
from paas.cli.images import images_export, images_gc
from paas.cli.logs import logs
from paas.cli.maintenance import maintenance_off, maintenance_on, maintenance_show
from paas.cli.ps import ps_list, ps_restart, ps_scale, ps_type
from paas.cli.releases import builds_list, releases_list, rollback
from paas.cli.run import run_command
from paas.cli.sshkeys import keys_add, keys_list, keys_remove
from paas.errors import PaasError


class CliError(click.ClickException):
    """An error shown as the single line `error: <message>`, exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class PaasGroup(click.Group):
    """A group that turns unknown commands, usage errors and PaasErrors into CliErrors."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if self.get_command(ctx, name) is None and not name.startswith("-"):
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise CliError(f"no such command {name}{hint}; `paas --help` lists them")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PaasError as exc:
            raise CliError(exc.message) from None
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "paas"
            raise CliError(f"{exc.format_message()} (see `{where} --help`)") from None


@click.group(cls=PaasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paas")
def cli() -> None:
    """paas: deploy apps with `git push`, and run them.

    Finds the platform through PAAS_URL and PAAS_API_KEY, else what `paas login`
    stored, else the platform on this machine.
    """


@cli.command("up", short_help="Start the platform in the foreground.")
def up() -> None:
    """Start the platform in the foreground: redis, web, build worker, agent and router."""
    from paas.up import run_up

    sys.exit(run_up())


for command in (
    apps_list, apps_create, apps_info, apps_destroy,
    git_remote,
    config_show, config_get, config_set, config_unset,
    ps_list, ps_scale, ps_restart, ps_type, ps_stop, ps_set,
    releases_list, releases_info, releases_output, rollback, builds_list, events_list,
    logs, login,
    keys_list, keys_add, keys_remove,
    users_list, users_add, tokens_list, tokens_create, tokens_revoke,
    access_list, access_add, access_update, access_remove, apps_transfer, audit_list,
    images_export, images_gc,
    buildpacks_list, buildpacks_add, buildpacks_set, buildpacks_remove, buildpacks_clear,
    builds_cache_purge,
    run_command,
    domains_list, domains_add, domains_remove,
    maintenance_show, maintenance_on, maintenance_off,
    certs_info, certs_add, certs_remove, certs_redirect,
):
    cli.add_command(command)


def main() -> None:
    """The console script: run the CLI; errors are shown by PaasGroup.invoke."""
    cli.main(prog_name="paas")
