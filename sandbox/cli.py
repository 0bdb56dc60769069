"""``klucznik sandbox``: run the KSeF sandbox server, or sign an AuthTokenRequest with a sandbox identity.

``klucznik sandbox --port 8765`` serves the sandbox with waitress on 127.0.0.1 (loopback only: it is a
test double, never a service). ``klucznik sandbox sign --nip N | --pesel P --style S IN OUT`` signs a file
with a sandbox "qualified" certificate so the flows can be walked without a real qualified signature.
"""

from __future__ import annotations

import sys

import click


@click.group(invoke_without_command=True)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it loopback)."
)
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--auth-delay",
    default=1.0,
    show_default=True,
    type=float,
    help="Seconds an authentication stays at status 100 before KSeF's decision shows.",
)
@click.option(
    "--rate-limits/--no-rate-limits",
    default=True,
    show_default=True,
    help="Enforce KSeF's API rate limits (the official values, per group, per context and IP address).",
)
@click.option(
    "--rate-limit-scale",
    default=1.0,
    show_default=True,
    type=float,
    help="Multiply every limit (10: the TEST environment's defaults, ten times production's).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fault injection.")
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False),
    help="JSON file keeping test data, grants and certificates across restarts.",
)
@click.pass_context
def sandbox(
    ctx: click.Context,
    host: str,
    port: int,
    auth_delay: float,
    rate_limits: bool,
    rate_limit_scale: float,
    seed: int,
    state_file: str | None,
) -> None:
    """Run Klucznik's KSeF sandbox (a local server that follows the official KSeF API)."""
    if ctx.invoked_subcommand is not None:
        return
    import waitress

    from sandbox import create_app
    from sandbox.state import Config

    app = create_app(
        {
            "SANDBOX_CONFIG": Config(
                auth_delay=auth_delay,
                enrollment_delay=auth_delay,
                operation_delay=auth_delay,
                rate_limits=rate_limits,
                rate_limit_scale=rate_limit_scale,
            ),
            "SANDBOX_SEED": seed,
            "SANDBOX_STATE_FILE": state_file,
        }
    )
    base = f"http://{host}:{port}"
    click.echo(
        f"Klucznik KSeF sandbox (NOT KSeF): API {base}/v2, Latarnia {base}/latarnia, QR {base}/qr, "
        f"signer {base}/sign, admin {base}/_sandbox/"
    )
    waitress.serve(app, host=host, port=port, ident="klucznik-sandbox", threads=8)


@sandbox.command("sign")
@click.option("--nip", help="Sign as a company seal for this NIP.")
@click.option("--pesel", help="Sign as a person with this PESEL.")
@click.option("--name", help="Name on the sandbox certificate (company or 'Given Surname').")
@click.option(
    "--style",
    type=click.Choice(["enveloped", "profil-zaufany", "enveloping"]),
    default="enveloped",
    show_default=True,
)
@click.argument("source", type=click.File("rb"))
@click.argument("target", type=click.Path(dir_okay=False, allow_dash=True))
def sign_command(
    nip: str | None, pesel: str | None, name: str | None, style: str, source, target: str
) -> None:
    """Sign SOURCE (an AuthTokenRequest XML) with a sandbox "qualified" certificate into TARGET."""
    from klucznik.errors import PortalError
    from sandbox import ca
    from sandbox import signer

    if bool(nip) == bool(pesel):
        raise click.UsageError("give exactly one of --nip (company seal) or --pesel (person)")
    if style == "profil-zaufany" and not pesel:
        raise click.UsageError("the profil-zaufany style signs as a person: give --pesel")
    certificate, key = ca.qualified_identity(nip=nip, pesel=pesel, name=name)
    try:
        signed = signer.sign(source.read(), certificate=certificate, private_key=key, style=style)
    except PortalError as exc:
        click.echo(f"{exc.message_pl}\n{exc.message_en}", err=True)
        sys.exit(1)
    if target == "-":
        click.get_binary_stream("stdout").write(signed)
    else:
        with open(target, "wb") as out:
            out.write(signed)
        click.echo(f"Signed ({style}) as {'NIP ' + nip if nip else 'PESEL ' + pesel}: {target}", err=True)
