// The end-to-end fixture: starts the real `credbroker` binary (CREDBROKER_BIN) on loopback in a
// temp dir, with a file key source laid out like a mounted Kubernetes Secret, and talks to its
// admin API. Mirrors tests/e2e/e2e_fixture.h. Key material is compared, never printed.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { get as httpGet } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";

import { Client, Metadata, credentials } from "@grpc/grpc-js";
import { loadSync, type MethodDefinition } from "@grpc/proto-loader";

import { LeaseClient, toBrokerError, type LeaseClientOptions } from "../dist/index.js";

export const LMN_V1 = "lmnfl_e2eone.0123456789abcdef0123";
export const LMN_V2 = "lmnfl_e2etwo.fedcba9876543210fedc";
export const APP_TOKEN = "e2e-app-token-0123456789";
export const APP2_TOKEN = "e2e-app2-token-0123456789";
export const ADMIN_TOKEN = "e2e-admin-token-0123456789";
export const PROVIDER = "lumenfall";

const PACKAGE_DIR = resolve(__dirname, "..");
const PROTO_DIR = join(PACKAGE_DIR, "proto");

/** The broker under test: $CREDBROKER_BIN, else the repository's dev build. */
export function brokerBinary(): string {
  const fromEnv = process.env["CREDBROKER_BIN"];
  if (fromEnv) return fromEnv;
  const dev = resolve(PACKAGE_DIR, "..", "..", "build", "dev", "services", "broker", "credbroker");
  if (existsSync(dev)) return dev;
  throw new Error("set CREDBROKER_BIN to the credbroker binary to test against");
}

export interface BrokerSetup {
  /** gRPC listen address; default a free port (127.0.0.1:0). */
  listen?: string;
  /** Serve TLS with tls.crt/tls.key, verify client certificates against ca.crt, and let the
   * mTLS identity billing/api lease lumenfall (see makeCertificates). */
  tls?: boolean;
  /** Appended to the configuration (top-level YAML). */
  extra?: string;
}

export function brokerConfig(setup: BrokerSetup = {}): string {
  const tls = setup.tls
    ? `  tls:
    cert_file: tls.crt
    key_file: tls.key
    client_ca_file: ca.crt
`
    : "";
  return `server:
  listen: ${setup.listen ?? "127.0.0.1:0"}
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
${tls}sources:
  - name: local
    file:
      root: keys
    refresh_interval: 1s
providers:
  # Fake keys: no provider to probe.
  - name: lumenfall
    probe: {disabled: true}
leases:
  default_ttl: 10m
  max_ttl: 1h
  min_ttl: 1s
  sweep_interval: 1s
policy:
  rules:
    - identities: [e2e-app, e2e-app2, "billing/*"]
      providers: ["*"]
identity:
${setup.tls ? "  mtls: {trust_domain: cluster.local}\n" : ""}  static_tokens:
    - service: e2e-app
      token: ${APP_TOKEN}
    - service: e2e-app2
      token: ${APP2_TOKEN}
    - service: e2e-admin
      token_file: admin.token
      admin: true
${setup.extra ?? ""}`;
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** In `dir`: ca.crt/key, the broker's tls.crt/key (localhost, 127.0.0.1) and the client's
 * billing.crt/key (spiffe://cluster.local/ns/billing/sa/api), as tests/e2e/security_test.cc. */
export function makeCertificates(dir: string): void {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", join(dir, "ca.key"), "-out", join(dir, "ca.crt"),
    "-subj", "/CN=ca", "-days", "2"]);
  const leaf = (name: string, san: string, usage: string): void => {
    const ext = join(dir, `${name}.ext`);
    const extensions = [
      "basicConstraints=CA:FALSE",
      `subjectAltName=${san}`,
      `extendedKeyUsage=${usage}`,
    ];
    writeFileSync(ext, `${extensions.join("\n")}\n`);
    openssl(["req", "-new", ...ec, "-keyout", join(dir, `${name}.key`),
      "-out", join(dir, `${name}.csr`), "-subj", `/CN=${name}`]);
    openssl(["x509", "-req", "-in", join(dir, `${name}.csr`), "-CA", join(dir, "ca.crt"),
      "-CAkey", join(dir, "ca.key"), "-CAcreateserial", "-out", join(dir, `${name}.crt`),
      "-days", "2", "-extfile", ext]);
  };
  leaf("tls", "DNS:localhost,IP:127.0.0.1", "serverAuth");
  leaf("billing", "URI:spiffe://cluster.local/ns/billing/sa/api", "clientAuth");
}

/** The fingerprint the broker shows for a key: the first 12 hex characters of its SHA-256. */
export function fingerprint(key: string): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 12);
}

/** Polls `pred` until it holds; fails naming `what` after `timeoutMs`. */
export async function eventually(
  what: string,
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  intervalMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await delay(intervalMs);
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bound and released). */
export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", ok);
  });
  const address = server.address();
  await new Promise<void>((ok) => server.close(() => ok()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

let secretWrites = 0;

/** Writes `files` into `dir` the way the kubelet updates a Secret volume (see temp_dir.cc). */
export function writeK8sSecretDir(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:.TZ]/g, "_");
  const tsName = `..${stamp}.${process.pid}_${secretWrites++}`;
  mkdirSync(join(dir, tsName));
  for (const [name, contents] of Object.entries(files)) {
    writeFileSync(join(dir, tsName, name), contents);
  }
  let oldTarget: string | undefined;
  try {
    oldTarget = readlinkSync(join(dir, "..data"));
  } catch {
    oldTarget = undefined;
  }
  rmSync(join(dir, "..data_tmp"), { force: true });
  symlinkSync(tsName, join(dir, "..data_tmp"));
  renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
  for (const name of Object.keys(files)) {
    let isLink = false;
    try {
      isLink = lstatSync(join(dir, name)).isSymbolicLink();
    } catch {
      isLink = false;
    }
    if (!isLink) symlinkSync(join("..data", name), join(dir, name));
  }
  for (const name of readdirSync(dir)) {
    if (!name.startsWith("..") && !(name in files)) rmSync(join(dir, name), { force: true });
  }
  if (oldTarget !== undefined) rmSync(join(dir, oldTarget), { recursive: true, force: true });
}

/** Replaces `path` atomically (a rename, as the kubelet swaps a projected token). */
export function replaceFile(path: string, contents: string): void {
  writeFileSync(`${path}.tmp`, contents);
  renameSync(`${path}.tmp`, path);
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** The broker as a child process; it reports its ports through --port-file. */
export class Broker {
  readonly grpcAddress: string;
  readonly metricsAddress: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<number | null>;
  readonly #logPath: string;

  private constructor(
    child: ChildProcess,
    exited: Promise<number | null>,
    ports: Map<string, number>,
    logPath: string,
  ) {
    this.#child = child;
    this.#exited = exited;
    this.#logPath = logPath;
    this.grpcAddress = `127.0.0.1:${ports.get("grpc")}`;
    this.metricsAddress = `127.0.0.1:${ports.get("metrics")}`;
  }

  static async start(workDir: string, run: number, timeoutMs = 30_000): Promise<Broker> {
    const portFile = join(workDir, `ports-${run}.txt`);
    const logPath = join(workDir, `broker-${run}.log`);
    const log = openSync(logPath, "w");
    const child = spawn(
      brokerBinary(),
      ["--config", join(workDir, "broker.yaml"), "--port-file", portFile],
      { cwd: workDir, stdio: ["ignore", log, log] },
    );
    closeSync(log);
    running.add(child);
    let exitCode: number | null | undefined;
    const exited = new Promise<number | null>((ok) => {
      child.once("exit", (code) => {
        running.delete(child);
        exitCode = code;
        ok(code);
      });
      child.once("error", () => {
        running.delete(child);
        exitCode = null;
        ok(null);
      });
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exitCode !== undefined) {
        const log = readFileSync(logPath, "utf8");
        throw new Error(`broker exited (${exitCode}) before serving; log:\n${log}`);
      }
      const contents = existsSync(portFile) ? readFileSync(portFile, "utf8") : "";
      if (contents.includes("metrics=")) {
        const ports = new Map<string, number>();
        for (const line of contents.split("\n")) {
          const [key, value] = line.split("=");
          if (key !== undefined && value !== undefined) ports.set(key, Number(value));
        }
        return new Broker(child, exited, ports, logPath);
      }
      await delay(20);
    }
    child.kill("SIGKILL");
    throw new Error(`broker did not report its ports; log:\n${readFileSync(logPath, "utf8")}`);
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** SIGTERM and wait; the exit code (null when it had to be killed). */
  async stop(graceMs = 10_000): Promise<number | null> {
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), graceMs);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }

  /** SIGKILL, no cleanup: a crash. */
  async kill(): Promise<void> {
    this.#child.kill("SIGKILL");
    await this.#exited;
  }

  logs(): string {
    return readFileSync(this.#logPath, "utf8");
  }
}

type AdminMethods = Record<string, MethodDefinition<object, object>>;
let adminMethods: AdminMethods | undefined;

function admin(): AdminMethods {
  if (adminMethods === undefined) {
    const def = loadSync("credbroker/v1/admin.proto", {
      keepCase: false,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
      includeDirs: [PROTO_DIR],
    });
    adminMethods = def["credbroker.v1.AdminService"] as unknown as AdminMethods;
  }
  return adminMethods;
}

export interface KeyVersionInfo {
  keyVersion: string;
  state: string;
}

/** One broker in a temp dir, restartable, with an admin channel and clients to close. */
export class Fixture {
  readonly dir: string;
  broker: Broker | undefined;
  #runs = 0;
  #admin: Client | undefined;
  readonly #clients: LeaseClient[] = [];

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** A temp dir with lumenfall's key v1 and the config; the broker started. */
  static async start(setup: BrokerSetup = {}): Promise<Fixture> {
    const fixture = new Fixture(mkdtempSync(join(tmpdir(), "credbroker-node-")));
    writeK8sSecretDir(join(fixture.dir, "keys", PROVIDER), { v1: `${LMN_V1}\n` });
    writeFileSync(join(fixture.dir, "admin.token"), `${ADMIN_TOKEN}\n`);
    try {
      if (setup.tls) makeCertificates(fixture.dir);
      writeFileSync(join(fixture.dir, "broker.yaml"), brokerConfig(setup));
      await fixture.startBroker();
    } catch (err) {
      rmSync(fixture.dir, { recursive: true, force: true });
      throw err;
    }
    return fixture;
  }

  async startBroker(): Promise<Broker> {
    this.broker = await Broker.start(this.dir, ++this.#runs);
    this.#admin?.close();
    this.#admin = new Client(this.broker.grpcAddress, credentials.createInsecure());
    return this.broker;
  }

  get address(): string {
    if (this.broker === undefined) throw new Error("no broker");
    return this.broker.grpcAddress;
  }

  /** A client (as e2e-app unless given a token file), retrying quickly; closed by cleanup(). */
  client(options: Partial<LeaseClientOptions> = {}): LeaseClient {
    const ownToken = options.tokenFile !== undefined || options.tokenSource !== undefined;
    const client = new LeaseClient({
      address: this.address,
      ...(ownToken ? {} : { token: APP_TOKEN }),
      retryIntervalMs: 50,
      ...options,
    });
    this.#clients.push(client);
    return client;
  }

  /** An AdminService call with the admin token; rejects with a BrokerError. */
  adminCall<Res>(method: string, request: object): Promise<Res> {
    const def = admin()[method];
    const channel = this.#admin;
    if (def === undefined || channel === undefined) throw new Error(`no admin ${method}`);
    const metadata = new Metadata();
    metadata.set("authorization", `Bearer ${ADMIN_TOKEN}`);
    return new Promise<Res>((ok, fail) => {
      channel.makeUnaryRequest(
        def.path,
        def.requestSerialize,
        def.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + 10_000 },
        (err, response) => (err ? fail(toBrokerError(err)) : ok(response as Res)),
      );
    });
  }

  async keyVersions(): Promise<KeyVersionInfo[]> {
    const resp = await this.adminCall<{ versions: KeyVersionInfo[] }>("ListKeyVersions", {
      provider: PROVIDER,
    });
    return resp.versions;
  }

  /** Adds lumenfall's v2 to the key dir and waits until the broker loaded it. */
  async stageV2(): Promise<void> {
    writeK8sSecretDir(join(this.dir, "keys", PROVIDER), { v1: `${LMN_V1}\n`, v2: `${LMN_V2}\n` });
    await eventually("the broker loads v2", async () =>
      (await this.keyVersions()).some((v) => v.keyVersion === "v2"),
    );
  }

  /** The broker's /metrics page. */
  metrics(): Promise<string> {
    const address = this.broker?.metricsAddress ?? "";
    return new Promise((ok, fail) => {
      httpGet(`http://${address}/metrics`, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => ok(body));
      }).on("error", fail);
    });
  }

  /** Closes the clients, stops the broker (it must exit cleanly) and removes the temp dir. */
  async cleanup(): Promise<void> {
    await Promise.allSettled(this.#clients.map((c) => c.close()));
    this.#admin?.close();
    try {
      const code = await this.broker?.stop();
      if (code !== undefined && code !== 0 && code !== null) {
        throw new Error(`broker exited with ${code} on SIGTERM`);
      }
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** Which of lumenfall's keys a header carries ("v1", "v2", "other"); never the key itself. */
export function keyIn(value: string): string {
  if (value.endsWith(LMN_V1)) return "v1";
  if (value.endsWith(LMN_V2)) return "v2";
  return "other";
}
