#!/usr/bin/python3
"""Runs the Python client's tests against a broker binary (for CMake/CTest and by hand).

    /usr/bin/python3 clients/python/run_tests.py --broker build/dev/services/broker/credbroker \
        --source-dir .

Equivalent to CREDBROKER_BIN=... CREDBROKER_SOURCE_DIR=... python3 -m unittest discover -s
clients/python/tests. Exit code 0 when every test passed.
"""
from __future__ import annotations

import argparse
import os
import sys
import unittest
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=os.environ.get("CREDBROKER_BIN", ""),
                        help="the credbroker binary (default: $CREDBROKER_BIN)")
    parser.add_argument("--source-dir", default=os.environ.get("CREDBROKER_SOURCE_DIR", ""),
                        help="the repository root (default: two levels above this script)")
    parser.add_argument("-k", dest="patterns", action="append", default=None,
                        help="only tests matching this substring (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    if not args.broker or not os.access(args.broker, os.X_OK):
        parser.error(f"no executable broker binary: {args.broker!r} (use --broker)")
    os.environ["CREDBROKER_BIN"] = os.path.abspath(args.broker)
    os.environ["CREDBROKER_SOURCE_DIR"] = os.path.abspath(args.source_dir or here.parent.parent)
    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = [f"*{p}*" for p in args.patterns]
    suite = loader.discover(str(here / "tests"), top_level_dir=str(here / "tests"))
    result = unittest.TextTestRunner(verbosity=2 if args.verbose else 1).run(suite)
    for test, reason in result.skipped:
        print(f"skipped: {test}: {reason}", file=sys.stderr)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if result.wasSuccessful() and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
