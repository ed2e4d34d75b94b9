"""The typer app and the click command that every cesres-ctl command is built with: one place for how a
command reads its command line and how its help looks.

- Help in plain text, as the errors are: no boxes to scrape, no rich to import for `--help`.
- Usage lines name the arguments as the help does (`RUN`, `CONFIG`), not by their Python names.
- What follows `--` is a command's trailing arguments (train's and sweep's model options): an option before
  it that the command does not have is a usage error, with the closest options it has, never a model option.
"""

from collections.abc import Callable
from typing import Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand

Function = TypeVar("Function", bound=Callable[..., Any])


class Command(TyperCommand):
    """A cesres-ctl command: its usage line shows each argument's metavar (RUN, CONFIG, REFS...)."""

    # ctx and the return values: click's, of the click that typer vendors privately (typer._click).
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = (param.metavar or str(param.name).upper()) + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


class TrailingCommand(Command):
    """A command whose arguments after `--` go to ctx.args as they are (train, sweep: the model's options).

    Before `--` the command line is the command's alone: click refuses an unknown option there (exit 2).
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        trailing: list[str] = []
        if "--" in args:
            cut = args.index("--")
            args, trailing = args[:cut], args[cut + 1 :]
        super().parse_args(ctx, args)
        ctx.args = trailing
        return trailing

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- MODEL OPTIONS...]"]


class App(typer.Typer):
    """typer.Typer with cesres-ctl's conventions (this module's docstring); its commands are Commands."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**{"rich_markup_mode": None, "pretty_exceptions_enable": False, **settings})

    def command(  # type: ignore[override]  # the same parameters, one default changed
        self, name: str | None = None, *, cls: type[TyperCommand] = Command, **settings: Any
    ) -> Callable[[Function], Function]:
        return super().command(name, cls=cls, **settings)
