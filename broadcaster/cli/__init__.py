"""The ``riskcast`` command line: the service's commands, one module per domain (the
process commands that run workers, the scheduler and the simulator are added by
:mod:`workers.cli`).

Every command is one unit of work: it commits at the end or changes nothing. Phone numbers
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
app.add_typer(cap.app, name="cap")
messages.register(app)
queue.register(app)

__all__ = ["app", "console", "err_console", "fail", "friendly"]
