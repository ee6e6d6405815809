#!/usr/bin/env node
// Offline checks for rendered Kubernetes manifests (helm template / kustomize build output).
//
//   node validate.mjs FILE... | -      check every YAML document; exit 1 on any problem
//   node validate.mjs --list-kinds     print the apiVersion/kinds that can be checked
//
// Each object is checked twice:
//  1. schema: the model class for its apiVersion+kind (kubernetes-models and the
//     prometheus-operator / cert-manager CRD packages) is constructed and .validate()d:
//     types, enums, required fields, formats.
//  2. strict: fields the schema does not define. The models accept unknown fields, and the
//     packages ship their JSON schemas only as ajv "standalone" code compiled into
//     _schemas/*.js (no schema objects or $ref definitions are exported), so the schema cannot
//     be walked as data. Instead the compiled validator walks the object for us: it reads every
//     property its schema defines (`data.name`, also to check `required`), and for maps
//     (additionalProperties: labels, annotations, ConfigMap data) it iterates the keys and reads
//     each value; a property the schema does not define is never read. The object is wrapped in
//     Proxies that record reads, and every own property that was never read is reported.
//     When the validator does not look inside an object at all (a free-form field such as
//     x-kubernetes-preserve-unknown-fields, or a type we cannot trace), that is an error too:
//     nothing below it could be checked.

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

// The npm dependencies are installed by scripts/install-k8s-tools.sh (npm ci in this folder).
const { parseAllDocuments } = await import("yaml").catch((e) => {
  console.error(`validate.mjs: cannot load its npm dependencies (${e.code ?? e.message}): run scripts/install-k8s-tools.sh`);
  process.exit(2);
});

// Packages searched for a model class, in this order.
const PACKAGES = ["kubernetes-models", "@kubernetes-models/prometheus-operator", "@kubernetes-models/cert-manager"];

// --- model lookup ------------------------------------------------------------------------

const modelCache = new Map();

function isModelClass(cls, apiVersion, kind) {
  return typeof cls === "function" && typeof apiVersion === "string" && typeof kind === "string" &&
    cls.apiVersion === apiVersion && cls.kind === kind && typeof cls.prototype?.validate === "function";
}

// kubernetes-models still models alpha/beta versions that Kubernetes has since removed
// (extensions/v1beta1, policy/v1beta1, ...), so from that package only GA versions are accepted.
// The CRD packages are taken as they are (e.g. monitoring.coreos.com/v1alpha1 ScrapeConfig).
function acceptedVersion(pkg, version) {
  return pkg !== "kubernetes-models" || /^v\d+$/.test(version);
}

// Returns the model class for apiVersion+kind, or null when none of PACKAGES defines it.
export async function findModel(apiVersion, kind) {
  const key = `${apiVersion} ${kind}`;
  if (modelCache.has(key)) return modelCache.get(key);
  let found = null;
  // Module paths are "<group>/<version>/<Kind>", the core group being just "<version>/<Kind>".
  const m = /^(?:([a-z0-9.-]+)\/)?(v[0-9a-z]+)$/.exec(String(apiVersion));
  if (m && /^[A-Z][A-Za-z0-9]*$/.test(String(kind))) {
    const gv = m[1] ? `${m[1]}/${m[2]}` : m[2];
    for (const pkg of PACKAGES) {
      if (!acceptedVersion(pkg, m[2])) continue;
      let mod;
      try {
        mod = await import(`${pkg}/${gv}/${kind}`);
      } catch (e) {
        if (e.code === "ERR_MODULE_NOT_FOUND" || e.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") continue;
        throw e;
      }
      if (isModelClass(mod[kind], apiVersion, kind)) { found = mod[kind]; break; }
    }
  }
  modelCache.set(key, found);
  return found;
}

// Every apiVersion/kind the packages define, as sorted "apiVersion Kind" strings.
export async function listKinds() {
  const kinds = new Set();
  for (const pkg of PACKAGES) {
    const pkgJson = new URL("package.json", import.meta.resolve(pkg));
    const { exports } = JSON.parse(readFileSync(pkgJson, "utf8"));
    for (const sub of Object.keys(exports)) {
      const gv = /^\.\/(.+)\/\*$/.exec(sub)?.[1];
      if (!gv || gv.startsWith("_") || !acceptedVersion(pkg, gv.split("/").pop())) continue;
      const mod = await import(`${pkg}/${gv}`);
      for (const cls of Object.values(mod)) {
        if (isModelClass(cls, cls.apiVersion, cls.kind)) kinds.add(`${cls.apiVersion} ${cls.kind}`);
      }
    }
  }
  return [...kinds].sort();
}

// --- paths -------------------------------------------------------------------------------

// Path segments -> "spec.containers[0].name", 'metadata.labels["app.kubernetes.io/name"]'.
function fmtPath(segs) {
  let out = "";
  for (const s of segs) {
    if (typeof s === "number") out += `[${s}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(s)) out += out ? `.${s}` : s;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out || "(object)";
}

// JSON pointer from an ajv error -> segments, using the data to tell array indexes from keys.
function pointerSegs(data, pointer) {
  const segs = [];
  let cur = data;
  for (const raw of pointer.split("/").slice(1)) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    const seg = Array.isArray(cur) && /^\d+$/.test(key) ? Number(key) : key;
    segs.push(seg);
    cur = cur != null && typeof cur === "object" ? cur[seg] : undefined;
  }
  return segs;
}

// --- strict check ------------------------------------------------------------------------

// Wraps value (and, lazily, everything read below it) in Proxies recording which properties the
// validator reads. Each object gets a node {value, segs, read, touched} pushed onto nodes.
function traced(value, segs, nodes) {
  if (value === null || typeof value !== "object") return value;
  const node = { value, segs, read: new Set(), touched: false };
  nodes.push(node);
  const children = new Map();
  const note = (key) => {
    node.touched = true;
    if (typeof key === "string") node.read.add(key);
  };
  return new Proxy(value, {
    get(target, key, receiver) {
      note(key);
      if (typeof key !== "string" || !Object.hasOwn(target, key)) return Reflect.get(target, key, receiver);
      if (!children.has(key)) {
        const seg = Array.isArray(target) ? Number(key) : key;
        children.set(key, traced(target[key], [...segs, seg], nodes));
      }
      return children.get(key);
    },
    has(target, key) {
      note(key);
      return Reflect.has(target, key);
    },
    // Enumeration (for..in over a map) only marks the object as looked at; a key counts as
    // known once its value is read, which the compiled validator does for each map entry.
    ownKeys(target) {
      node.touched = true;
      return Reflect.ownKeys(target);
    },
  });
}

// Runs the model's compiled validator over a traced copy of obj; returns [{segs, message}].
function strictProblems(Model, obj, skipUnder) {
  const nodes = [];
  try {
    Model.prototype.validate.call(traced(obj, [], nodes));
  } catch (e) {
    if (!isValidationError(e)) return [{ segs: [], message: `strict check failed: ${e?.message ?? e}` }];
    // Schema errors were already reported by the plain validate().
  }
  const under = (segs) => skipUnder.some((p) => p.length <= segs.length && p.every((s, i) => s === segs[i]));
  const out = [];
  for (const { value, segs, read, touched } of nodes) {
    if (Array.isArray(value) || under(segs)) continue;
    const keys = Object.keys(value);
    if (!touched && (keys.length > 0 || segs.length === 0)) {
      out.push({ segs, message: "the schema does not describe the fields of this object (free-form), so they cannot be checked" });
      continue;
    }
    for (const k of keys) {
      if (!read.has(k)) out.push({ segs: [...segs, k], message: `unknown field "${k}": not defined by the schema` });
    }
  }
  return out;
}

// --- one object / one file ---------------------------------------------------------------

// What the models' validate() throws on schema errors (ajv's ValidationError, which has no name).
function isValidationError(e) {
  return e instanceof Error && e.validation === true && Array.isArray(e.errors);
}

function errorToProblem(data, err) {
  const segs = pointerSegs(data, err.instancePath ?? "");
  const p = err.params ?? {};
  if (err.keyword === "required" && p.missingProperty) {
    return { segs: [...segs, p.missingProperty], message: "required field is missing" };
  }
  let message = err.message ?? err.keyword;
  if (err.keyword === "enum" && Array.isArray(p.allowedValues)) message += `: ${p.allowedValues.join(", ")}`;
  return { segs, message };
}

// Checks one parsed object; returns [{path, message}] (empty when it is fine).
export async function checkObject(obj) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    return [{ path: "(document)", message: "a Kubernetes object must be a YAML mapping" }];
  }
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    return [{ path: "(object)", message: "apiVersion and kind must both be set (strings)" }];
  }
  const Model = await findModel(apiVersion, kind);
  if (!Model) {
    const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
    const builtin = !group.includes(".") || group.endsWith(".k8s.io");
    const why = builtin && /^v\d+(alpha|beta)\d*$/.test(version)
      ? "only GA versions of built-in Kubernetes APIs are checked" : "no model to check it against";
    return [{ path: "(object)", message: `unknown apiVersion/kind: ${apiVersion} ${kind} (${why}; see --list-kinds)` }];
  }
  const problems = [];
  try {
    new Model(obj).validate();
  } catch (e) {
    if (!isValidationError(e)) throw e;
    problems.push(...e.errors.map((err) => errorToProblem(obj, err)));
  }
  const skipUnder = problems.filter((p) => p.message !== "required field is missing").map((p) => p.segs);
  problems.push(...strictProblems(Model, obj, skipUnder));
  return problems.map(({ segs, message }) => ({ path: fmtPath(segs), message }));
}

function describe(obj, docNo) {
  const kind = typeof obj?.kind === "string" ? obj.kind : "<no kind>";
  const name = typeof obj?.metadata?.name === "string" ? obj.metadata.name : `<unnamed, document ${docNo}>`;
  return `${kind}/${name}`;
}

// Checks a (multi-document) YAML text. Returns {objects: [kind...], lines: [problem line...]}.
export async function checkText(text, label) {
  const objects = [];
  const lines = [];
  // YAML 1.1 as Kubernetes reads it (sigs.k8s.io/yaml): yes/no/on/off are booleans, but
  // timestamps stay strings.
  const docs = parseAllDocuments(text, {
    version: "1.1",
    customTags: (tags) => tags.filter((t) => t.tag !== "tag:yaml.org,2002:timestamp"),
  });
  let docNo = 0;
  for (const doc of docs) {
    docNo++;
    if (doc.errors.length) {
      for (const e of doc.errors) lines.push(`${label}: document ${docNo}: (yaml): ${e.message.split("\n")[0]}`);
      continue;
    }
    const obj = doc.toJS({ maxAliasCount: 100 });
    if (obj === null || obj === undefined) continue; // empty document (e.g. only comments)
    objects.push(obj.kind);
    for (const p of await checkObject(obj)) lines.push(`${label}: ${describe(obj, docNo)}: ${p.path}: ${p.message}`);
  }
  return { objects, lines };
}

// --- command line ------------------------------------------------------------------------

async function main(argv) {
  if (argv.includes("--list-kinds")) {
    const byVersion = new Map();
    for (const k of await listKinds()) {
      const [v, kind] = k.split(" ");
      byVersion.set(v, [...(byVersion.get(v) ?? []), kind]);
    }
    for (const [v, ks] of byVersion) console.log(`${v}: ${ks.join(" ")}`);
    return 0;
  }
  if (argv.length === 0 || argv.some((a) => a.startsWith("-") && a !== "-")) {
    console.error("usage: validate.mjs FILE... (- for stdin) | --list-kinds");
    return 2;
  }
  const objects = [];
  let failed = false;
  for (const file of argv) {
    const label = file === "-" ? "<stdin>" : file;
    let text;
    try {
      text = readFileSync(file === "-" ? 0 : file, "utf8");
    } catch (e) {
      console.log(`${label}: cannot read: ${e.message}`);
      failed = true;
      continue;
    }
    const r = await checkText(text, label);
    objects.push(...r.objects);
    for (const l of r.lines) console.log(l);
    if (r.lines.length) failed = true;
  }
  if (!failed && objects.length === 0) {
    console.log(`${argv.join(" ")}: no Kubernetes objects found`);
    failed = true;
  }
  if (failed) return 1;
  const counts = new Map();
  for (const k of objects) counts.set(k, (counts.get(k) ?? 0) + 1);
  const kinds = [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => (n > 1 ? `${k} x${n}` : k));
  console.log(`ok: ${objects.length} object${objects.length === 1 ? "" : "s"} (${kinds.join(", ")})`);
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.exitCode = await main(process.argv.slice(2));
}
