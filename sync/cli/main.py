"""``python -m sync.cli.main``: the same CLI as the ``closedloop`` script."""

from sync.cli import app

if __name__ == "__main__":
    app()
