#!/usr/bin/python3
"""Generates the Helm chart's values.schema.json from a hand-written template and config.proto.

The template (helm/credbroker/values.schema.in.json) is a draft-07 JSON Schema for the chart's
values. Where values pass a section of the broker's configuration through, it refers to a
generated definition: {"$ref": "#/definitions/credbroker.v1.ProviderConfig"}. This script adds a
definition for every message reachable from credbroker.v1.BrokerConfig, refusing what the
broker's YAML parser (libs/config/src/yaml_to_proto.cc) refuses structurally: unknown keys,
wrong types, malformed durations, two members of one oneof.

The template may adjust generated definitions where the chart replaces broker fields (file paths
become Secret references) under a top-level "x-credbroker-overrides" key, which is not copied out:
  {"credbroker.v1.MintConfig": {"remove": ["admin_key_file"], "add": {"adminKeySecret": {...}},
                                "required": ["adminKeySecret"]}}
"remove" forbids broker fields, "add" allows the chart's own, "required" lists fields that must be
there (the broker's parser requires none).

  gen-chart-schema.py [--template PATH] [--proto-root PATH] [--out PATH] [--check]

--check regenerates in memory and exits 1 when --out differs (for CI). Needs Debian's
python3-protobuf and protoc (protobuf-compiler), which scripts/install-deps.sh installs.
"""
import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO_FILE = "credbroker/v1/config.proto"
ROOT_MESSAGE = "credbroker.v1.BrokerConfig"
OVERRIDES_KEY = "x-credbroker-overrides"
DEFINITION_REF = "#/definitions/"

# What the parser accepts, as regular expressions that ECMA-262, Python's re and Go's regexp
# (Helm's validator) read alike. Scalars reach the parser as text (yaml-cpp's Scalar()), so a
# quoted "42" is as good as 42.
WS = r"[\t\n\v\f\r ]*"  # absl::StripAsciiWhitespace's set
# core::ParseDuration: an optional leading "<N>d" (absl::SimpleAtoi, so a sign and blanks before
# the "d" pass; a negative N is refused, "-0" is not negative), then absl::ParseDuration: "0", or
# decimal numbers each with a unit (ns us ms s m h), after an optional sign. A negative result or
# "inf" is refused, so "-" passes only when every number is zero.
_NUMBER = r"([0-9]+(\.[0-9]*)?|\.[0-9]+)"
_ZERO = r"(0+(\.0*)?|\.0+)"
_UNIT = r"(ns|us|ms|s|m|h)"
_ABSL = rf"(\+?(0|({_NUMBER}{_UNIT})+)|-(0|({_ZERO}{_UNIT})+))"
_DAYS = rf"(\+?[0-9]+|-0+){WS}d"
DURATION_PATTERN = rf"^{WS}({_DAYS}{_ABSL}?|{_ABSL}){WS}$"
INTEGER_PATTERN = rf"^{WS}[+-]?[0-9]+{WS}$"  # absl::SimpleAtoi (the range is not checked)
UNSIGNED_PATTERN = rf"^{WS}[+]?[0-9]+{WS}$"  # absl::SimpleAtoi into an unsigned: no minus sign
_INF_NAN = r"[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN]"
NUMBER_PATTERN = rf"^{WS}[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|{_INF_NAN}){WS}$"
# Definitions the generated ones refer to for scalar fields (also usable from the template).
SCALARS = {
    "google.protobuf.Duration": {
        "description": "A duration: 90s, 15m, 1h30m, 1.5h, 7d, 7d12h, 0. Not negative.",
        # A YAML 0 reaches the parser as the text "0", which it accepts.
        "anyOf": [{"type": "string", "pattern": DURATION_PATTERN},
                  {"type": "integer", "const": 0}]},
    "scalar.string": {"description": "Any scalar, taken as its text (not null).",
                      "type": ["string", "number", "boolean"]},
    "scalar.bool": {"enum": [True, False, "true", "false"]},
    "scalar.int32": {"anyOf": [{"type": "integer", "minimum": -2**31, "maximum": 2**31 - 1},
                               {"type": "string", "pattern": INTEGER_PATTERN}]},
    "scalar.int64": {"anyOf": [{"type": "integer", "minimum": -2**63, "maximum": 2**63 - 1},
                               {"type": "string", "pattern": INTEGER_PATTERN}]},
    "scalar.uint32": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
                                {"type": "string", "pattern": UNSIGNED_PATTERN}]},
    "scalar.uint64": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
                                {"type": "string", "pattern": UNSIGNED_PATTERN}]},
    "scalar.double": {"anyOf": [{"type": "number"},
                                {"type": "string", "pattern": NUMBER_PATTERN}]},
}
SCALAR_OF_TYPE = {"TYPE_STRING": "string", "TYPE_BYTES": "string", "TYPE_BOOL": "bool",
                  "TYPE_INT32": "int32", "TYPE_SINT32": "int32", "TYPE_SFIXED32": "int32",
                  "TYPE_INT64": "int64", "TYPE_SINT64": "int64", "TYPE_SFIXED64": "int64",
                  "TYPE_UINT32": "uint32", "TYPE_FIXED32": "uint32",
                  "TYPE_UINT64": "uint64", "TYPE_FIXED64": "uint64",
                  "TYPE_DOUBLE": "double"}
# The parser has no case for these (cpp_type FLOAT): any value is refused with
# "field type not supported in configuration".
UNSUPPORTED = {"TYPE_FLOAT"}


class GenError(Exception):
    pass


def load_descriptors(proto_root):
    """config.proto and its imports compiled to a FileDescriptorSet, with comments. Debian's
    protoc (protobuf-compiler) it is: grpc_tools' bundled protoc (3.5.1) predates proto3
    `optional`. protoc finds google/protobuf/duration.proto in its own include directory."""
    try:
        from google.protobuf import descriptor_pb2
    except ImportError as e:
        raise GenError(f"{e}: needs Debian's python3-protobuf (run this with /usr/bin/python3)")
    protoc = shutil.which("protoc")
    if protoc is None:
        raise GenError("protoc not found (Debian: protobuf-compiler)")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "config.pb")
        run = subprocess.run([protoc, f"-I{proto_root}", "--include_imports",
                              "--include_source_info", f"--descriptor_set_out={out}", PROTO_FILE],
                             stderr=subprocess.PIPE, text=True)
        if run.returncode != 0:
            raise GenError(f"protoc failed on {os.path.join(proto_root, PROTO_FILE)}:\n"
                           + run.stderr.strip())
        with open(out, "rb") as f:
            return descriptor_pb2.FileDescriptorSet.FromString(f.read())


def comment_text(raw):
    """A leading comment as one line per paragraph."""
    paragraphs = [" ".join(line.strip() for line in p.splitlines())
                  for p in raw.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def index_types(fds):
    """".pkg.Name" (as a field's type_name says) -> (DescriptorProto, leading comment,
    {field name: leading comment}), and ".pkg.Name" -> EnumDescriptorProto."""
    messages, enums = {}, {}
    for f in fds.file:
        comments = {tuple(loc.path): comment_text(loc.leading_comments)
                    for loc in f.source_code_info.location if loc.leading_comments}

        def walk(msgs, prefix, path):
            for i, m in enumerate(msgs):
                name, here = f"{prefix}.{m.name}", path + (i,)
                fields = {fd.name: comments.get(here + (2, j), "") for j, fd in enumerate(m.field)}
                messages[name] = (m, comments.get(here, ""), fields)
                for e in m.enum_type:
                    enums[f"{name}.{e.name}"] = e
                walk(m.nested_type, name, here + (3,))

        walk(f.message_type, f".{f.package}" if f.package else "", (4,))
        for e in f.enum_type:
            enums[f".{f.package}.{e.name}" if f.package else f".{e.name}"] = e
    return messages, enums


def type_name(fd):
    return fd.Type.Name(fd.type)  # "TYPE_STRING", ...


def value_schema(fd, enums):
    """The schema of one value of the field (one item when it is repeated)."""
    t = type_name(fd)
    if fd.type_name == ".google.protobuf.Duration":
        return {"$ref": DEFINITION_REF + "google.protobuf.Duration"}
    if t in ("TYPE_MESSAGE", "TYPE_GROUP"):
        # A mapping, or null ("sqlite:" with nothing under it selects the defaults).
        return {"anyOf": [{"type": "null"}, {"$ref": DEFINITION_REF + fd.type_name[1:]}]}
    if t in SCALAR_OF_TYPE:
        return {"$ref": DEFINITION_REF + "scalar." + SCALAR_OF_TYPE[t]}
    if t == "TYPE_ENUM":
        return {"enum": [v.name for v in enums[fd.type_name].value]}
    if t in UNSUPPORTED:
        return {"not": {}}
    raise GenError(f"field {fd.name}: unexpected type {t}")


def message_definition(desc, comment, field_comments, enums):
    """The definition of a message, and the members of each of its oneofs."""
    props = {}
    for fd in desc.field:
        schema = value_schema(fd, enums)
        if fd.label == fd.LABEL_REPEATED:
            schema = {"type": ["array", "null"], "items": schema}  # null: no entries
        text = field_comments[fd.name]
        if type_name(fd) in UNSUPPORTED:
            text = (text + "\n\n" if text else "") + (
                "Cannot be set: the broker's configuration parser does not support this field's "
                f"type ({type_name(fd)[5:].lower()}).")
        if text and "$ref" in schema:  # draft-07 ignores what stands beside a $ref
            schema = {"allOf": [schema]}
        props[fd.name] = ({"description": text} if text else {}) | schema
    definition = {"type": "object"}
    if comment:
        definition["description"] = comment
    definition.update(additionalProperties=False, properties=props)
    oneofs = []
    for i in range(len(desc.oneof_decl)):
        members = [fd.name for fd in desc.field  # proto3 `optional` makes one-member oneofs
                   if fd.HasField("oneof_index") and fd.oneof_index == i and not fd.proto3_optional]
        if len(members) > 1:
            oneofs.append(members)
    return definition, oneofs


def reachable(messages, root):
    seen, todo = [], [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in messages:
            raise GenError(f"message {name[1:]} is not defined in {PROTO_FILE} or its imports")
        seen.append(name)
        for fd in messages[name][0].field:
            if fd.type_name and fd.type_name != ".google.protobuf.Duration" and \
                    type_name(fd) in ("TYPE_MESSAGE", "TYPE_GROUP"):
                todo.append(fd.type_name)
    return sorted(seen)


def apply_overrides(definitions, overrides):
    """{"Message": {"remove": [field...], "add": {name: schema}, "required": [name...]}}"""
    if not isinstance(overrides, dict):
        raise GenError(f"{OVERRIDES_KEY} must be an object keyed by message name")
    for name, override in overrides.items():
        where = f"{OVERRIDES_KEY}.{name}"
        if name not in definitions:
            raise GenError(f"{OVERRIDES_KEY}: no generated definition {name}")
        kinds = {"remove": list, "add": dict, "required": list}
        if not isinstance(override, dict) or any(
                not isinstance(value, kinds.get(key, ())) for key, value in override.items()):
            raise GenError(f"{where}: expected an object with remove (a list of fields), add (an "
                           "object of schemas) and/or required (a list of fields)")
        props = definitions[name]["properties"]
        for field in override.get("remove", []):
            if field not in props:
                raise GenError(f"{where}.remove: {name} has no field {field}")
            del props[field]
        for field, schema in override.get("add", {}).items():
            if field in props:
                raise GenError(f"{where}.add: {field} is already a field of {name}"
                               " (remove it to replace it)")
            props[field] = schema
        for field in override.get("required", []):
            if field not in props:
                raise GenError(f"{where}.required: {name} has no field {field}")
        if "required" in override:
            definitions[name]["required"] = list(override["required"])


def forbid_pairs(definition, oneofs):
    """At most one member of each oneof: no two may be present (null counts, as in the parser)."""
    present = definition["properties"]
    pairs = [[a, b] for members in oneofs for i, a in enumerate(members) for b in members[i + 1:]
             if a in present and b in present]
    if pairs:
        groups = "; ".join(", ".join(members) for members in oneofs)
        definition["not"] = {"$comment": f"at most one of: {groups}",
                             "anyOf": [{"required": pair} for pair in pairs]}


def refs(node, where):
    """(where, name) for every "#/definitions/NAME" under node."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(DEFINITION_REF):
            yield where, ref[len(DEFINITION_REF):]
        items = node.items()
    else:
        items = enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        yield from refs(value, f"{where}/{key}")


def generate(template_path, proto_root):
    try:
        with open(template_path, encoding="utf-8") as f:
            template = json.load(f)
    except (OSError, ValueError) as e:
        raise GenError(f"cannot read template {template_path}: {e}")
    if not isinstance(template, dict):
        raise GenError(f"{template_path}: expected a JSON object")
    overrides = template.pop(OVERRIDES_KEY, {})
    messages, enums = index_types(load_descriptors(proto_root))
    generated, oneofs = {}, {}
    for name in reachable(messages, "." + ROOT_MESSAGE):
        generated[name[1:]], oneofs[name[1:]] = message_definition(*messages[name], enums)
    apply_overrides(generated, overrides)
    for name, definition in generated.items():
        forbid_pairs(definition, oneofs[name])
    own = template.get("definitions", {})
    clash = sorted(set(own) & (set(generated) | set(SCALARS)))
    if clash:
        raise GenError(f"{template_path}: definitions {', '.join(clash)} are generated; "
                       f"use {OVERRIDES_KEY} to change them")
    known, used = own | generated | SCALARS, set()
    for where, name in [*refs(template, os.path.basename(template_path)),
                        *refs(overrides, OVERRIDES_KEY), *refs(generated, "")]:
        if name not in known:
            raise GenError(f"{where}: $ref {DEFINITION_REF}{name}: no such definition (no "
                           f"message {name} is reachable from {ROOT_MESSAGE})")
        used.add(name)
    scalars = {name: schema for name, schema in SCALARS.items() if name in used}
    comment = (f"Generated by scripts/gen-chart-schema.py from {os.path.basename(template_path)} "
               f"and {PROTO_FILE}; do not edit.")
    out = {"$comment": comment, "$schema": "http://json-schema.org/draft-07/schema#"}
    out |= {k: v for k, v in template.items() if k not in ("$comment", "definitions")}
    out["definitions"] = dict(sorted((own | generated | scalars).items()))
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default=os.path.join(
        REPO, "helm/credbroker/values.schema.in.json"))
    parser.add_argument("--proto-root", default=os.path.join(REPO, "proto"))
    parser.add_argument("--out", default=os.path.join(REPO, "helm/credbroker/values.schema.json"))
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when --out is not what this script would write")
    args = parser.parse_args(argv)
    try:
        text = generate(args.template, args.proto_root)
    except GenError as e:
        print(f"gen-chart-schema: error: {e}", file=sys.stderr)
        return 1
    if args.check:
        try:
            with open(args.out, encoding="utf-8") as f:
                current = f.read()
        except OSError as e:
            current = None
            print(f"gen-chart-schema: {args.out}: {e.strerror}", file=sys.stderr)
        if current != text:
            if current is not None:
                diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(),
                                                 args.out, "regenerated", lineterm=""))
                print("\n".join(diff[:40] + (["..."] if len(diff) > 40 else [])),
                      file=sys.stderr)
            print(f"gen-chart-schema: {args.out} is out of date; run scripts/gen-chart-schema.py "
                  "and commit the result", file=sys.stderr)
            return 1
        return 0
    try:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        print(f"gen-chart-schema: error: cannot write {args.out}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
