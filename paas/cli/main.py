"""The `paas` click group: every command, and the one place errors become a clean line."""

from __future__ import annotations

import difflib
import importlib
import sys
from typing import Any

import click

from paas import __version__
from paas.errors import PaasError


class CliError(click.ClickException):
    """An error shown as the single line `error: <message>`, exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


#: Every command but `up`, and where it is defined (module in paas.cli:function). A module
#: is imported when one of its commands runs, or when `paas --help` lists them: a command
#: starts without importing the others'.
COMMANDS = {
    "access": "accounts:access_list",
    "access:add": "accounts:access_add",
    "access:remove": "accounts:access_remove",
    "access:update": "accounts:access_update",
    "apps": "apps:apps_list",
    "apps:create": "apps:apps_create",
    "apps:destroy": "apps:apps_destroy",
    "apps:info": "apps:apps_info",
    "apps:transfer": "accounts:apps_transfer",
    "audit": "accounts:audit_list",
    "buildpacks": "buildpacks:buildpacks_list",
    "buildpacks:add": "buildpacks:buildpacks_add",
    "buildpacks:clear": "buildpacks:buildpacks_clear",
    "buildpacks:remove": "buildpacks:buildpacks_remove",
    "buildpacks:set": "buildpacks:buildpacks_set",
    "builds": "releases:builds_list",
    "builds:cache:purge": "buildpacks:builds_cache_purge",
    "certs": "certs:certs_info",
    "certs:add": "certs:certs_add",
    "certs:redirect": "certs:certs_redirect",
    "certs:remove": "certs:certs_remove",
    "config": "config_vars:config_show",
    "config:get": "config_vars:config_get",
    "config:set": "config_vars:config_set",
    "config:unset": "config_vars:config_unset",
    "domains": "domains:domains_list",
    "domains:add": "domains:domains_add",
    "domains:remove": "domains:domains_remove",
    "events": "deploys:events_list",
    "git:remote": "gitremote:git_remote",
    "images:export": "images:images_export",
    "images:gc": "images:images_gc",
    "keys": "sshkeys:keys_list",
    "keys:add": "sshkeys:keys_add",
    "keys:remove": "sshkeys:keys_remove",
    "login": "auth:login",
    "logs": "logs:logs",
    "maintenance": "maintenance:maintenance_show",
    "maintenance:off": "maintenance:maintenance_off",
    "maintenance:on": "maintenance:maintenance_on",
    "ps": "ps:ps_list",
    "ps:restart": "ps:ps_restart",
    "ps:scale": "ps:ps_scale",
    "ps:set": "deploys:ps_set",
    "ps:stop": "deploys:ps_stop",
    "ps:type": "ps:ps_type",
    "releases": "releases:releases_list",
    "releases:info": "deploys:releases_info",
    "releases:output": "deploys:releases_output",
    "rollback": "releases:rollback",
    "run": "run:run_command",
    "tokens": "accounts:tokens_list",
    "tokens:create": "accounts:tokens_create",
    "tokens:revoke": "accounts:tokens_revoke",
    "users": "accounts:users_list",
    "users:add": "accounts:users_add",
}


class PaasGroup(click.Group):
    """A group that turns unknown commands, usage errors and PaasErrors into CliErrors, and
    imports a command's module only when it is asked for (COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, name = COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(f"paas.cli.{module}"), name))
        return self.commands.get(cmd_name)

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


def main() -> None:
    """The console script: run the CLI; errors are shown by PaasGroup.invoke."""
    cli.main(prog_name="paas")
