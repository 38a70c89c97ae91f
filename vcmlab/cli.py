"""What every console script does with bad input: one clear line and exit status 2."""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable

from hydra.errors import InstantiationException

from vcmlab.errors import InputError, Preempted

log = logging.getLogger(__name__)
USER_ERRORS = (InputError, FileNotFoundError)


def user_error(err: BaseException) -> str | None:
    """The message of the InputError (or missing file) behind `err`; when Hydra's instantiate wrapped
    it, prefixed with the config key of the object being built (e.g. `data: batch_size must be ...`)."""
    key = None
    while err is not None:
        if isinstance(err, USER_ERRORS):
            return f"{key}: {err}" if key and not str(err).startswith(key) else str(err)
        if not isinstance(err, InstantiationException):
            return None
        match = re.search(r"^full_key: (\S+)$", str(err), re.MULTILINE)
        key = key or (match.group(1) if match else None)
        err = err.__cause__ or err.__context__
    return None


def report_user_errors(prog: str) -> Callable:
    """Decorator for a console script's main: bad input ends as `prog: error: message`, status 2."""

    def wrap(main: Callable) -> Callable:
        @functools.wraps(main)
        def run(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except Preempted as err:
                log.error("%s", err)
                print(f"{prog}: {err}", file=sys.stderr)
                sys.exit(err.exit_status)
            except Exception as err:
                cause = user_error(err)
                if cause is None:
                    raise
                log.error("%s", cause)
                print(f"{prog}: error: {cause}", file=sys.stderr)
                sys.exit(2)

        return run

    return wrap
