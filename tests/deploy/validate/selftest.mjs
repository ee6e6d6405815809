// Self-test of validate.mjs. Run: node --test selftest.mjs   (or: node selftest.mjs)
// Needs only node_modules (npm ci), no network.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { checkObject, checkText } from "./validate.mjs"; // exits with a clear message without node_modules
const { parse } = await import("yaml");

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const ALL_KINDS = here("testdata/all-kinds.yaml");

async function problems(text) {
  return (await checkText(text, "t.yaml")).lines;
}

const DEPLOYMENT = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{containerPort: 80, name: http}]
          securityContext: {runAsNonRoot: true}
`;

// DEPLOYMENT with one line of the first container replaced / added.
const deploymentWith = (find, replace) => {
  assert.ok(DEPLOYMENT.includes(find), `fixture lacks ${find}`);
  return DEPLOYMENT.replace(find, replace);
};

test("a valid Deployment passes", async () => {
  assert.deepEqual(await problems(DEPLOYMENT), []);
});

test("a valid ServiceMonitor, PrometheusRule and Certificate pass", async () => {
  const text = `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  endpoints: [{port: http, path: /metrics, interval: 30s}]
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: web}
spec:
  groups:
    - name: web
      rules:
        - {alert: WebDown, expr: 'up{job="web"} == 0', for: 5m, labels: {severity: page}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web}
spec:
  secretName: web-tls
  dnsNames: [web.example]
  issuerRef: {name: ca, kind: Issuer}
`;
  const r = await checkText(text, "t.yaml");
  assert.deepEqual(r.lines, []);
  assert.deepEqual(r.objects, ["ServiceMonitor", "PrometheusRule", "Certificate"]);
});

test("testdata/all-kinds.yaml passes and covers every kind the chart may render", async () => {
  const r = await checkText(readFileSync(ALL_KINDS, "utf8"), "all-kinds.yaml");
  assert.deepEqual(r.lines, []);
  const want = ["ConfigMap", "Secret", "Service", "ServiceAccount", "Pod", "PersistentVolumeClaim",
    "Deployment", "StatefulSet", "PodDisruptionBudget", "NetworkPolicy", "ClusterRole", "ClusterRoleBinding",
    "Role", "RoleBinding", "ServiceMonitor", "PrometheusRule", "Certificate", "Issuer"];
  assert.deepEqual([...new Set(r.objects)].sort(), want.sort());
});

test("an unknown field in a container is reported with its path", async () => {
  const lines = await problems(deploymentWith("securityContext:", "securityContxt:"));
  assert.deepEqual(lines, [
    't.yaml: Deployment/web: spec.template.spec.containers[0].securityContxt: unknown field "securityContxt": not defined by the schema',
  ]);
});

test("unknown fields are found in metadata and in CRD specs too", async () => {
  assert.match((await problems(deploymentWith("  labels: {app: web}", "  lables: {app: web}"))).join("\n"),
    /Deployment\/web: metadata\.lables: unknown field/);
  const sm = `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  endpoints: [{port: http, intervall: 30s}]
`;
  assert.deepEqual(await problems(sm),
    ['t.yaml: ServiceMonitor/web: spec.endpoints[0].intervall: unknown field "intervall": not defined by the schema']);
});

test("a wrong type is reported", async () => {
  const lines = await problems(deploymentWith("replicas: 2", 'replicas: "three"'));
  assert.deepEqual(lines, ["t.yaml: Deployment/web: spec.replicas: must be integer"]);
});

test("a value outside an enum is reported", async () => {
  const lines = await problems(deploymentWith("image: nginx:1.27", "image: nginx:1.27\n          imagePullPolicy: Sometimes"));
  assert.equal(lines.length, 1);
  assert.match(lines[0], /spec\.template\.spec\.containers\[0\]\.imagePullPolicy: must be equal to one of the allowed values: Always, IfNotPresent, Never/);
});

test("YAML is read as Kubernetes reads it: an unquoted yes is a boolean", async () => {
  const lines = await problems(deploymentWith("image: nginx:1.27", "image: nginx:1.27\n          env: [{name: A, value: yes}]"));
  assert.deepEqual(lines, ["t.yaml: Deployment/web: spec.template.spec.containers[0].env[0].value: must be string"]);
});

test("a missing required field is reported", async () => {
  const lines = await problems(deploymentWith("- name: web\n          image:", "- image:"));
  assert.deepEqual(lines, ["t.yaml: Deployment/web: spec.template.spec.containers[0].name: required field is missing"]);
});

test("an unknown apiVersion/kind is an error, not skipped", async () => {
  for (const [apiVersion, kind] of [["v1", "Frobnicator"], ["example.com/v1", "Widget"], ["apps/v1", "DeploymentSpec"], ["apps/v9", "Deployment"]]) {
    const lines = await problems(`apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: {name: x}\n`);
    assert.deepEqual(lines, [`t.yaml: ${kind}/x: (object): unknown apiVersion/kind: ${apiVersion} ${kind} (no model to check it against; see --list-kinds)`]);
  }
  assert.deepEqual(await problems("apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: x}\n"),
    ["t.yaml: Ingress/x: (object): unknown apiVersion/kind: extensions/v1beta1 Ingress (only GA versions of built-in Kubernetes APIs are checked; see --list-kinds)"]);
  assert.match((await problems("metadata: {name: x}\n")).join(), /apiVersion and kind must both be set/);
});

test("labels and annotations with arbitrary keys pass", async () => {
  const text = deploymentWith("  labels: {app: web}",
    '  labels: {app: web, example.com/any-key: "v", weird_KEY.1: x}\n  annotations: {"free form / key": anything, checksum/config: abc}');
  assert.deepEqual(await problems(text), []);
});

test("a free-form object the schema does not describe is an error", async () => {
  const text = `
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: acme}
spec:
  acme:
    server: https://acme.example/directory
    privateKeySecretRef: {name: acme-key}
    solvers: [{dns01: {webhook: {groupName: acme.example, solverName: s, config: {apiKey: x}}}}]
`;
  assert.deepEqual(await problems(text),
    ["t.yaml: Issuer/acme: spec.acme.solvers[0].dns01.webhook.config: the schema does not describe the fields of this object (free-form), so they cannot be checked"]);
});

test("every non-map object in all-kinds.yaml rejects an injected unknown field", async () => {
  // Objects whose keys are data (maps), where any key is allowed.
  const isMap = (kind, path) => /(^|\.)(labels|annotations|matchLabels|data|stringData|requests|limits)$/.test(path) ||
    (kind === "Service" && path === "spec.selector");
  function* objects(v, path) {
    if (Array.isArray(v)) for (const [i, x] of v.entries()) yield* objects(x, `${path}[${i}]`);
    else if (v && typeof v === "object") {
      yield [v, path];
      for (const [k, x] of Object.entries(v)) yield* objects(x, path ? `${path}.${k}` : k);
    }
  }
  let checked = 0;
  for (const text of readFileSync(ALL_KINDS, "utf8").split(/^---$/m)) {
    const doc = parse(text);
    if (!doc) continue;
    const count = [...objects(doc, "")].length;
    for (let i = 0; i < count; i++) {
      const copy = structuredClone(doc);
      const [target, path] = [...objects(copy, "")][i];
      target.zzUnknownField = "1";
      const reported = (await checkObject(copy)).some((p) => p.path.endsWith("zzUnknownField") && p.message.startsWith("unknown field"));
      assert.equal(reported, !isMap(doc.kind, path), `${doc.kind} ${path || "(root)"}: unknown field ${reported ? "reported" : "not reported"}`);
      checked++;
    }
  }
  assert.ok(checked > 100, `only ${checked} objects checked`);
});

function cli(args, input) {
  return spawnSync(process.execPath, [here("validate.mjs"), ...args], { input, encoding: "utf8" });
}

test("command line: ok line and exit 0, problem lines and exit 1", () => {
  const ok = cli(["-"], DEPLOYMENT + "---\n# empty\n---\n" + DEPLOYMENT.replace("name: web\n  labels", "name: web2\n  labels"));
  assert.equal(ok.stdout, "ok: 2 objects (Deployment x2)\n");
  assert.equal(ok.status, 0);

  const bad = cli(["-"], deploymentWith("replicas: 2", "replicas: two"));
  assert.equal(bad.stdout, "<stdin>: Deployment/web: spec.replicas: must be integer\n");
  assert.equal(bad.status, 1);

  const empty = cli(["-"], "# nothing rendered\n");
  assert.match(empty.stdout, /no Kubernetes objects found/);
  assert.equal(empty.status, 1);

  const yamlErr = cli(["-"], "a: [1, 2\n");
  assert.match(yamlErr.stdout, /^<stdin>: document 1: \(yaml\): /);
  assert.equal(yamlErr.status, 1);

  const missing = cli(["/nonexistent/file.yaml"]);
  assert.match(missing.stdout, /^\/nonexistent\/file\.yaml: cannot read: /);
  assert.equal(missing.status, 1);

  assert.equal(cli([]).status, 2);
});

test("command line: --list-kinds names the supported kinds", () => {
  const r = cli(["--list-kinds"]);
  assert.equal(r.status, 0);
  for (const line of ["apps/v1: ", "monitoring.coreos.com/v1: ", "cert-manager.io/v1: ", "v1: "]) {
    assert.ok(r.stdout.split("\n").some((l) => l.startsWith(line)), `no ${line} line`);
  }
  assert.match(r.stdout, /^apps\/v1: .*\bStatefulSet\b/m);
  assert.match(r.stdout, /^monitoring\.coreos\.com\/v1: .*\bPrometheusRule\b/m);
  assert.match(r.stdout, /^cert-manager\.io\/v1: .*\bIssuer\b/m);
});
