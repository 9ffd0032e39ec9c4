"""Drives an interactive shell through the gateway on a real PTY (pexpect).

argv: the ssh command line. Prints the session transcript; exits non-zero on a
failed expectation. The steps are in STEPS (send, expect...).
"""
import os
import sys

import pexpect

child = pexpect.spawn(sys.argv[1], sys.argv[2:], env=dict(os.environ), encoding="utf-8", timeout=30)
child.logfile_read = sys.stdout
steps = os.environ["PTY_STEPS"].split("\x1e")
try:
    for step in steps:
        kind, _, arg = step.partition("\x1f")
        arg = bytes.fromhex(arg).decode()
        if kind == "send":
            child.send(arg)
        elif kind == "expect":
            child.expect_exact(arg)
        elif kind == "eof":
            child.expect(pexpect.EOF)
except pexpect.ExceptionPexpect as e:
    print("\nPEXPECT FAILURE:", type(e).__name__, file=sys.stdout)
    sys.exit(3)
sys.exit(0)
