"""Tests of scripts/gen-chart-schema.py: the schema it generates from a small template refuses what
the broker's YAML parser refuses, and accepts what it accepts.

  python3 -m unittest discover -s scripts/tests -p '*_test.py'

Needs python3-jsonschema (or pip's jsonschema) in the interpreter running the tests; the generator
runs under an interpreter with google.protobuf (this one, else /usr/bin/python3).
"""
import functools
import itertools
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import unittest

import jsonschema

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GENERATOR = os.path.join(REPO, "scripts", "gen-chart-schema.py")
CHART = os.path.join(REPO, "helm", "credbroker")
DEF = "#/definitions/"

TEMPLATE = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sources": {"type": "array", "items": {"$ref": DEF + "credbroker.v1.SourceConfig"}},
        "providers": {"type": "array", "items": {"$ref": DEF + "credbroker.v1.ProviderConfig"}},
        "policy": {"$ref": DEF + "credbroker.v1.PolicyConfig"},
        "leases": {"$ref": DEF + "credbroker.v1.LeaseConfig"},
        "anomaly_detection": {"$ref": DEF + "credbroker.v1.AnomalyConfig"},
        "server": {"$ref": DEF + "credbroker.v1.ServerConfig"},
        "shutdownGrace": {"$ref": DEF + "google.protobuf.Duration"},
    },
    "x-credbroker-overrides": {
        "credbroker.v1.MintConfig": {
            "remove": ["admin_key_file"],
            "required": ["adminKeySecret"],
            "add": {"adminKeySecret": {
                "type": "object", "additionalProperties": False, "required": ["name", "key"],
                "properties": {"name": {"type": "string"}, "key": {"type": "string"}}}},
        },
    },
}


@functools.lru_cache(maxsize=None)
def generator_python():
    for exe in (sys.executable, "/usr/bin/python3"):
        probe = [exe, "-c", "import google.protobuf.descriptor_pb2"]
        if exe and subprocess.run(probe, capture_output=True).returncode == 0:
            return exe
    raise RuntimeError("no python3 with google.protobuf (Debian: python3-protobuf)")


def run_generator(*args):
    return subprocess.run([generator_python(), GENERATOR, *args], capture_output=True, text=True)


def generate(template, tmp):
    path = os.path.join(tmp, "values.schema.in.json")
    with open(path, "w") as f:
        json.dump(template, f)
    out = os.path.join(tmp, "values.schema.json")
    return run_generator("--template", path, "--out", out), out


# A port of core::ParseDuration (libs/core/src/duration.cc) over absl 20220623's SimpleAtoi and
# ParseDuration, in quarter-nanosecond ticks as absl::Duration keeps them, to hold the pattern to.
SPACE, DIGITS, INT64_MAX = " \t\n\v\f\r", "0123456789", 2**63 - 1
TICKS = {"ns": 4, "us": 4 * 10**3, "ms": 4 * 10**6, "s": 4 * 10**9, "m": 240 * 10**9,
         "h": 14400 * 10**9}
LIMIT = 2**63 * TICKS["s"]  # absl::Duration saturates to +-infinity about here


def saturate(t):
    return math.inf if t >= LIMIT else -math.inf if t <= -LIMIT else t


def simple_atoi64(text):
    text = text.strip(SPACE)
    if not re.fullmatch(r"[+-]?[0-9]+", text) or abs(int(text)) > INT64_MAX + (text[0] == "-"):
        return None
    return int(text)


def absl_parse_duration(s):
    sign = -1 if s.startswith("-") else 1
    s = s[1:] if s[:1] in ("-", "+") else s
    if not s:
        return None
    if s in ("0", "inf"):
        return 0 if s == "0" else sign * math.inf
    total, i = 0, 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] in DIGITS:
            j += 1
        int_part, frac_part, frac_scale, int_empty = int(s[i:j] or 0), 0, 1, j == i
        if int_part > INT64_MAX:
            return None
        if j < len(s) and s[j] == ".":
            j += 1
            while j < len(s) and s[j] in DIGITS:
                if frac_scale <= INT64_MAX // 10:
                    frac_part, frac_scale = frac_part * 10 + int(s[j]), frac_scale * 10
                j += 1
        if int_empty and frac_scale == 1:
            return None
        unit = next((u for u in ("ns", "us", "ms", "s", "m", "h") if s.startswith(u, j)), None)
        if unit is None:
            return None
        if int_part:
            total = saturate(total + saturate(sign * int_part * TICKS[unit]))
        if frac_part:
            scaled = saturate(sign * frac_part * TICKS[unit])
            if not math.isinf(scaled):  # absl divides magnitudes: truncation toward zero
                scaled = abs(scaled) // frac_scale * (1 if scaled > 0 else -1)
            total = saturate(total + scaled)
        i = j + len(unit)
    return total


def parse_duration(text):
    rest = text.strip(SPACE)
    if not rest:
        return None
    days = 0
    if "d" in rest:
        n = simple_atoi64(rest[:rest.index("d")])
        if n is None or n < 0:
            return None
        days, rest = saturate(n * 24 * TICKS["h"]), rest[rest.index("d") + 1:]
        if not rest:
            return days
    d = absl_parse_duration(rest)
    return None if d is None or d < 0 or d == math.inf else days + d


class GeneratedSchemaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        run, cls.out = generate(TEMPLATE, cls.tmp.name)
        if run.returncode != 0:
            raise RuntimeError(f"generator failed: {run.stderr}")
        with open(cls.out) as f:
            cls.text = f.read()
        cls.schema = json.loads(cls.text)
        jsonschema.Draft7Validator.check_schema(cls.schema)
        cls.validator = jsonschema.Draft7Validator(cls.schema)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def accepts(self, values):
        errors = [e.message for e in self.validator.iter_errors(values)]
        self.assertEqual(errors, [], f"refused: {values!r}")

    def refuses(self, values):
        self.assertFalse(self.validator.is_valid(values), f"accepted: {values!r}")

    def provider(self, **fields):
        return {"providers": [{"name": "acme", "base_url": "https://api.acme.test"} | fields]}

    def test_a_full_configuration_passes(self):
        self.accepts({
            "sources": [{"name": "k8s", "file": {"root": "/keys"}, "max_staleness": "24h"},
                        {"name": "vault", "vault": {"address": "https://vault:8200",
                                                    "auth": {"kubernetes": {"role": "cb"}}}}],
            "providers": [{"name": "acme", "base_url": "https://api.acme.test",
                           "single_key": True, "header_prefix": "", "scopes": ["read"],
                           "rotation_period": "90d", "overlap": "7d", "key_hint": {},
                           "probe": {"path": "/v1/me", "expected_status": 200},
                           "mint": {"preset": "firemoon", "timeout": "30s",
                                    "adminKeySecret": {"name": "acme", "key": "admin"},
                                    "create": {"method": "POST", "path": "/keys"}}}],
            "policy": {"rules": [{"identities": ["billing/*"], "providers": ["*"],
                                  "max_ttl": "1h", "max_active_leases": 3,
                                  "rate_limit": {"per_second": 0.5, "burst": 5}}],
                       "admins": ["ops/admin"]},
            "leases": {"default_ttl": "15m", "max_ttl": "1h"},
            "anomaly_detection": {"threshold": 4, "warmup_buckets": "30", "disabled": "false"},
            "server": {"listen": "0.0.0.0:7443", "insecure_plaintext": True},
            "shutdownGrace": "20s",
        })

    def test_unknown_keys_are_refused(self):
        self.refuses(self.provider(nmae="typo"))
        self.refuses(self.provider(probe={"pth": "/v1/me"}))
        self.refuses({"policy": {"rule": []}})
        self.refuses({"policy": {"rules": [{"identity": ["a/b"]}]}})
        self.refuses({"sources": [{"name": "v", "vault": {"auth": {"token": {"file": "/t"}}}}]})

    def test_durations_follow_the_parser(self):
        for good in ("7d", "90s", "1h30m", "1.5h", "0", "7d12h", "300ms", ".5s", "1.s", "+5m",
                     "-0s", "7 d", " 15m ", "1h0m0s", "2us", "7d0", 0):
            self.accepts({"leases": {"default_ttl": good}})
        for bad in ("7 days", "-5m", "5", "1x", "", "inf", "1h7d", "1.5d", "-7d", "5 m",
                    "7d 1h", "d", "1h 30m", "00", "0.0", "1H", 5, 1.5, True, None, ["1h"]):
            self.refuses({"leases": {"default_ttl": bad}})

    def test_duration_pattern_agrees_with_a_port_of_the_parser(self):
        pattern = re.compile(self.schema["definitions"]["google.protobuf.Duration"]
                             ["anyOf"][0]["pattern"])
        exhaustive = ("".join(p) for n in range(1, 6) for p in itertools.product("01.+-dsmhnu ",
                                                                                 repeat=n))
        tokens = ["0", "1", "9", "12", ".", "+", "-", "d", "ns", "us", "ms", "s", "m", "h", " ",
                  "\t", "inf", "x", "5d", "1h", "30m", "0.25"]
        rng = random.Random(7)
        sampled = ("".join(rng.choices(tokens, k=rng.randint(1, 7))) for _ in range(50000))
        for text in itertools.chain(exhaustive, sampled):
            parsed = parse_duration(text)
            if (parsed is not None) != bool(pattern.search(text)):
                # Known: a negative that truncates to 0 ticks ("-.1ns") passes the parser.
                self.assertTrue(parsed == 0 and "-" in text, f"{text!r}: parser says {parsed}")

    def test_bools_are_true_or_false(self):
        for good in (True, False, "true", "false"):
            self.accepts(self.provider(single_key=good))
        for bad in ("yes", "True", "1", 1, 0, None):
            self.refuses(self.provider(single_key=bad))

    def test_integers_and_numbers(self):
        for good in (3, "3", -1, " +7 ", 2**31 - 1):
            self.accepts({"policy": {"rules": [{"max_active_leases": good}]}})
        for bad in (2**31, 1.5, "3.5", "x", "", True, None, [1]):
            self.refuses({"policy": {"rules": [{"max_active_leases": bad}]}})
        for good in (4, 4.5, "4.5", "1e3", "-.5"):
            self.accepts({"anomaly_detection": {"threshold": good}})
        for bad in ("four", "1e", "", True, None):
            self.refuses({"anomaly_detection": {"threshold": bad}})

    def test_strings_take_any_scalar_but_not_null(self):
        for good in ("https://x", 8200, True):
            self.accepts({"sources": [{"name": "v", "vault": {"address": good}}]})
        for bad in (None, ["a"], {"a": 1}):
            self.refuses({"sources": [{"name": "v", "vault": {"address": bad}}]})

    def test_null_is_an_empty_section_or_list_but_not_a_value(self):
        self.accepts({"policy": {"rules": None}, "sources": [{"name": "s", "file": None}]})
        self.accepts(self.provider(probe=None, scopes=None))
        self.refuses(self.provider(scopes=["read", None]))
        self.refuses(self.provider(scopes="read"))
        self.refuses({"leases": "15m"})

    def test_at_most_one_member_of_a_oneof(self):
        file, vault = {"root": "/keys"}, {"address": "https://vault:8200"}
        self.accepts({"sources": [{"name": "s", "file": file}]})
        self.accepts({"sources": [{"name": "s"}]})
        self.refuses({"sources": [{"name": "s", "file": file, "vault": vault}]})
        self.refuses({"sources": [{"name": "s", "file": None, "vault": vault}]})
        auth = {"token": {"token_env": "T"}, "kubernetes": {"role": "r"}}
        self.refuses({"sources": [{"name": "s", "vault": vault | {"auth": auth}}]})

    def test_overrides_remove_and_add_fields(self):
        secret = {"name": "acme", "key": "admin"}
        self.refuses(self.provider(mint={"admin_key_file": "/secrets/admin"}))
        self.refuses(self.provider(mint={"admin_key_file": "/a", "adminKeySecret": secret}))
        self.accepts(self.provider(mint={"adminKeySecret": secret}))
        self.refuses(self.provider(mint={"adminKeySecret": {"name": "acme"}}))
        self.refuses(self.provider(mint={"preset": "firemoon"}))  # adminKeySecret is required
        self.assertNotIn("x-credbroker-overrides", self.text)

    def test_descriptions_come_from_proto_comments(self):
        defs = self.schema["definitions"]
        provider = defs["credbroker.v1.ProviderConfig"]["properties"]
        self.assertEqual(provider["header_name"]["description"],
                         'Header the key goes in. Default "Authorization".')
        self.assertIn("retires when its overlap has ended and no unexpired lease holds it; at "
                      "the latest `retire_grace`", provider["retire_grace"]["description"])
        self.assertNotIn("description", provider["name"])
        self.assertTrue(defs["credbroker.v1.FileSourceConfig"]["description"]
                        .startswith("A directory of provider folders, each laid out like"))

    def test_uint32_fields_take_non_negative_integers(self):
        self.accepts(self.provider(key_hint={}))
        self.accepts(self.provider(key_hint={"prefix": 4, "suffix": "4"}))
        self.accepts({"server": {"max_watch_streams": 10}})
        self.refuses({"server": {"max_watch_streams": -1}})
        self.refuses({"server": {"max_watch_streams": "-1"}})
        self.refuses({"server": {"max_watch_streams": 2**32}})

    def test_output_is_stable_and_marked_generated(self):
        self.assertTrue(self.text.startswith('{\n  "$comment": "Generated by '
                                             'scripts/gen-chart-schema.py from values.schema.in'
                                             '.json and credbroker/v1/config.proto; do not edit.'))
        self.assertTrue(self.text.endswith("}\n") and not self.text.endswith("\n\n"))
        self.assertEqual(self.text, json.dumps(self.schema, indent=2, ensure_ascii=False) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            run, out = generate(TEMPLATE, tmp)
            with open(out) as f:
                self.assertEqual(f.read(), self.text)

    def test_check_mode(self):
        with tempfile.TemporaryDirectory() as tmp:
            run, out = generate(TEMPLATE, tmp)
            template = os.path.join(tmp, "values.schema.in.json")
            check = ("--template", template, "--out", out, "--check")
            self.assertEqual(run_generator(*check).returncode, 0)
            with open(out, "a") as f:
                f.write(" ")
            run = run_generator(*check)
            self.assertEqual(run.returncode, 1)
            self.assertIn("out of date", run.stderr)

    def test_errors_name_what_is_wrong(self):
        cases = [
            ({"properties": {"x": {"$ref": DEF + "credbroker.v1.Nope"}}}, "credbroker.v1.Nope"),
            ({"x-credbroker-overrides": {"credbroker.v1.Nope": {"remove": ["a"]}}},
             "credbroker.v1.Nope"),
            ({"x-credbroker-overrides": {"credbroker.v1.MintConfig": {"remove": ["nope"]}}},
             "no field nope"),
            ({"x-credbroker-overrides": {"credbroker.v1.MintConfig": {"add": {"preset": {}}}}},
             "preset is already a field"),
            ({"x-credbroker-overrides": {"credbroker.v1.MintConfig": {"required": ["nope"]}}},
             "no field nope"),
        ]
        for template, message in cases:
            with tempfile.TemporaryDirectory() as tmp:
                run, out = generate(template, tmp)
                self.assertEqual(run.returncode, 1, template)
                self.assertIn(message, run.stderr)
                self.assertFalse(os.path.exists(out))


@unittest.skipUnless(os.path.exists(os.path.join(CHART, "values.schema.in.json")),
                     "the chart has no values.schema.in.json yet")
class CommittedSchemaTest(unittest.TestCase):
    def test_chart_schema_is_up_to_date(self):
        run = run_generator("--check")
        self.assertEqual(run.returncode, 0, run.stderr)


if __name__ == "__main__":
    unittest.main()
