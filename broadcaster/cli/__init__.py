"""The ``riskcast`` command line: the service's commands, one module per domain (the
process commands that run workers, the scheduler and the simulator are added by
:mod:`workers.cli`).

Every command that reads or changes the service's data runs as a signed-in user (``riskcast
login``, or ``RISKCAST_TOKEN``) with that user's role, as the API's routes do; without one,
only ``db upgrade``, the first admin's ``users create``, the processes and the pure message
tools run. Every command is one unit of work: it commits at the end or changes nothing. Phone numbers
are printed masked. Errors print one line naming what is wrong and exit 1.
"""

from __future__ import annotations

import typer

from broadcaster.cli import (
    campaigns,
    cap,
    communities,
    contacts,
    db,
    messages,
    organisations,
    queue,
    templates,
    users,
)
from broadcaster.cli.common import console, err_console, fail, friendly

app = typer.Typer(
    help="riskcast: multilingual risk-communication campaigns by SMS and WhatsApp.",
    no_args_is_help=True,
)
app.add_typer(communities.app, name="communities")
app.add_typer(contacts.app, name="contacts")
app.add_typer(templates.app, name="templates")
app.add_typer(campaigns.app, name="campaigns")
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(organisations.app, name="organisations")
app.add_typer(cap.app, name="cap")
users.register(app)
messages.register(app)
queue.register(app)

__all__ = ["app", "console", "err_console", "fail", "friendly"]
