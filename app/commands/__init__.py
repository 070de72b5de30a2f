"""The commands of ``mobility``, one module per command group; ``app/cli.py`` parses the
command line and calls them. Each returns the process's exit code.

- ``console.py``: printing to the terminal, and failing with an exit code;
- ``database.py``: the one-connection database a command works in;
- ``migrate.py``: ``migrate``;
- ``providers.py``: ``providers add | list | show | overrides | push-secret | remove | enable |
  disable | sync-now | credentials``;
- ``staff_tokens.py``: ``staff-token create | revoke | list``;
- ``secret_keys.py``: ``secrets reseal`` (``secrets new-key`` needs no module of its own);
- ``sync.py``: ``sync``, and the sync report ``demo`` prints too;
- ``demo.py``: ``demo``;
- ``serve.py``, ``worker.py``, ``scheduler.py``: the long-running processes.
"""
