// Auth-failure reports, the caller's token file, how a lease prints, and option checks.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { inspect } from "node:util";

import { BrokerError, LeaseClient, Status } from "../dist/index.js";
import {
  APP2_TOKEN,
  APP_TOKEN,
  Fixture,
  LMN_V1,
  PROVIDER,
  eventually,
  fingerprint,
  replaceFile,
  writeK8sSecretDir,
} from "./fixture.js";

const TIMEOUT = { timeout: 30_000 };

test("an auth failure is reported with the held lease and classified", TIMEOUT, async () => {
  const fixture = await Fixture.start();
  try {
    const client = fixture.client();
    await client.authorizationHeader(PROVIDER);
    const classification = await client.reportAuthFailure(PROVIDER, 429, "rate_limit_exceeded");
    assert.equal(typeof classification, "string");
    assert.notEqual(classification, "");
    await eventually("the report is counted", async () =>
      (await fixture.metrics()).includes("credbroker_auth_failure_reports_total{"),
    );
    // Nothing held for a provider never asked for: nothing to report against.
    await assert.rejects(client.reportAuthFailure("fluximage", 401), (err: unknown) => {
      return err instanceof BrokerError && err.code === Status.FAILED_PRECONDITION;
    });
  } finally {
    await fixture.cleanup();
  }
});

test("the token file is read again when it changes", TIMEOUT, async () => {
  const fixture = await Fixture.start();
  try {
    // A projected service-account token: `token` links to ..data/token, swapped by the kubelet.
    const tokenDir = join(fixture.dir, "projected");
    const project = (token: string): void => writeK8sSecretDir(tokenDir, { token: `${token}\n` });
    const tokenFile = join(tokenDir, "token");
    project(APP_TOKEN);
    const client = fixture.client({ tokenFile, watch: false });
    assert.equal(await client.ping(), "e2e-app");
    project(APP2_TOKEN);
    assert.equal(await client.ping(), "e2e-app2");
    assert.equal((await client.currentLease(PROVIDER)).keyFingerprint, fingerprint(LMN_V1));
    replaceFile(tokenFile, "not-a-known-token-0123456789\n");
    await assert.rejects(client.ping(), (err: unknown) => {
      return err instanceof BrokerError && err.code === Status.UNAUTHENTICATED;
    });
    rmSync(tokenFile);
    await assert.rejects(client.ping(), (err: unknown) => {
      return (
        err instanceof BrokerError &&
        err.code === Status.UNAUTHENTICATED &&
        err.message.includes(tokenFile)
      );
    });
  } finally {
    await fixture.cleanup();
  }
});

test("a lease and a header never print the key", TIMEOUT, async () => {
  const fixture = await Fixture.start();
  try {
    const client = fixture.client();
    const lease = await client.currentLease(PROVIDER);
    assert.ok(lease.apiKey === LMN_V1, "the lease holds the key");
    assert.equal(lease.keyFingerprint, fingerprint(LMN_V1));
    const header = await client.authorizationHeader(PROVIDER);
    assert.ok(header.value.endsWith(LMN_V1), "the header carries the key");
    const shown = [
      inspect(lease),
      String(lease),
      JSON.stringify(lease),
      inspect({ lease }, { depth: 5 }),
      inspect(header),
      String(header),
      JSON.stringify(header),
    ];
    for (const s of shown) assert.ok(!s.includes(LMN_V1), "printed a key");
    assert.ok(shown[0]?.includes(lease.keyFingerprint));
    const unknown = await client.currentLease("no-such-provider").catch((err: unknown) => err);
    assert.ok(unknown instanceof BrokerError, String(unknown));
    assert.notEqual(unknown.code, Status.OK);
  } finally {
    await fixture.cleanup();
  }
});

test("bad options are refused up front", () => {
  const refused = (options: ConstructorParameters<typeof LeaseClient>[0]): void => {
    assert.throws(
      () => new LeaseClient(options),
      (err: unknown) => err instanceof BrokerError && err.code === Status.INVALID_ARGUMENT,
    );
  };
  refused({ address: "" });
  refused({ address: "127.0.0.1:1", token: "a", tokenFile: "/b" });
  refused({ address: "127.0.0.1:1", tls: { certFile: "/c" } });
  refused({ address: "127.0.0.1:1", tls: { rootCaFile: "/no/such/ca.pem" } });
  refused({ address: "127.0.0.1:1", renewFraction: 1.5 });
});

test("TLS and mutual TLS: the client certificate is the identity", TIMEOUT, async () => {
  const fixture = await Fixture.start({ tls: true });
  const clients: LeaseClient[] = [];
  const client = (options: ConstructorParameters<typeof LeaseClient>[0]): LeaseClient => {
    const c = new LeaseClient(options);
    clients.push(c);
    return c;
  };
  try {
    const file = (name: string): string => join(fixture.dir, name);
    // The certificate names 127.0.0.1 (no override needed) and localhost.
    const mtls = client({
      address: fixture.address,
      tls: {
        rootCaFile: file("ca.crt"),
        certFile: file("billing.crt"),
        keyFile: file("billing.key"),
      },
    });
    assert.equal(await mtls.ping(), "billing/api");
    assert.equal((await mtls.currentLease(PROVIDER)).keyFingerprint, fingerprint(LMN_V1));
    const bearer = client({
      address: fixture.address,
      token: APP_TOKEN,
      tls: { rootCaFile: file("ca.crt"), serverNameOverride: "localhost" },
    });
    assert.equal(await bearer.ping(), "e2e-app");
    // A broker whose certificate the client's roots do not vouch for is never talked to.
    const untrusting = client({
      address: fixture.address,
      token: APP_TOKEN,
      tls: { rootCaFile: file("billing.crt") },
      retry: { maxAttempts: 1 },
    });
    await assert.rejects(untrusting.ping(), (err: unknown) => {
      return err instanceof BrokerError && err.code === Status.UNAVAILABLE;
    });
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await fixture.cleanup();
  }
});
