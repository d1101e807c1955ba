"""`demo`, `doctor` and `install-plugin`: trying docker-swap, checking a set-up, installing it
as `docker swap`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from docker_swap.cli.app import cli, fail
from docker_swap.cli.charts import Timeline, render_svg, write
from docker_swap.cli.demo_view import demo_json, demo_report, demo_timeline
from docker_swap.cli.output import presenter
from docker_swap.cli.targeting import swarm_option
from docker_swap.errors import EXIT_NEEDS_ATTENTION
from docker_swap.options import DEMO_PORT, DEMO_SWAPS, ComposeOptions


@cli.command("demo")
@click.option("--swaps", type=click.IntRange(1, 100), default=DEMO_SWAPS, show_default=True,
              help="How many swaps (v1 -> v2 -> v1 ...).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEMO_PORT, show_default=True,
              help="Host port of the example's nginx.")
@click.option("--keep", is_flag=True, help="Leave the example running, and say where.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--report", "chart", metavar="FILE", type=click.Path(dir_okay=False),
              help="Also write a chart of the run (requests/s, failed, p99, each swap's "
              "phases): FILE.svg, FILE.png, or FILE.html with the summary (needs "
              "docker-swap[charts]).")
def demo_command(swaps: int, port: int, keep: bool, as_json: bool, chart: str | None) -> None:
    """Bring up the bundled classic example, put it under load, swap it, report what failed."""
    from docker_swap.demo import run_demo  # noqa: PLC0415  (its load generator loads only for it)

    shown = presenter(as_json=as_json, quiet=as_json)
    try:
        if chart:
            render_svg(Timeline("check"))  # refuses at once when matplotlib is missing
        report = run_demo(swaps=swaps, port=port, keep=keep, observer=shown,
                          say=lambda text: None if as_json else shown.out.print(escape(text)))
    except Exception as error:
        fail(shown, error, "app")
    except KeyboardInterrupt:
        shown.err.print("demo interrupted" + ("" if keep else "; what it made is removed"))
        sys.exit(130)
    if as_json:
        click.echo(demo_json(report))
    else:
        shown.out.print(demo_report(report))
    if chart:
        write(demo_timeline(report), Path(chart))
        if not as_json:
            shown.out.print(f"chart: {chart}")


@cli.command("doctor")
@swarm_option
@click.pass_obj
def doctor_command(compose: ComposeOptions, /, swarm: bool | None) -> None:
    """Check the engine, compose, the project and each swappable service's proxy; say what to
    fix. Exits 3 (needs attention) when something needs fixing."""
    from docker_swap.cli.doctor import diagnose  # noqa: PLC0415

    console = presenter(as_json=False, quiet=False).out
    healthy = True
    for finding in diagnose(compose, swarm):
        healthy = healthy and finding.ok
        mark = "[green]✓[/]" if finding.ok else "[red]✗[/]"
        console.print(f"{mark} {escape(finding.subject)}: {escape(finding.text)}")
        if finding.hint:
            console.print(f"    {escape(finding.hint)}")
    sys.exit(0 if healthy else EXIT_NEEDS_ATTENTION)


@cli.command("install-plugin")
@click.option("--force", is_flag=True, help="Replace a file of another origin.")
def install_plugin_command(force: bool) -> None:
    """Make `docker swap ...` run docker-swap (a Docker CLI plugin; DOCKER_CONFIG honoured)."""
    from docker_swap.cli.plugin import install_plugin  # noqa: PLC0415

    try:
        path = install_plugin(force=force)
    except Exception as error:
        fail(presenter(as_json=False, quiet=False), error, "")
    click.echo(f"installed {path}: `docker swap deploy SERVICE` now runs docker-swap")
