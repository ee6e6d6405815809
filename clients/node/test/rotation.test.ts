// A rotation mid-use, a quarantine pushed to the client, and the SDK helper following a rotation
// (tests/e2e/client_test.cc for the Node client).
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { inspect } from "node:util";

import {
  BrokerError,
  providerCredentials,
  type LeaseClient,
  type SdkCredentials,
} from "../dist/index.js";
import { Fixture, LMN_V1, LMN_V2, PROVIDER, eventually, keyIn } from "./fixture.js";

const TIMEOUT = { timeout: 30_000 };

async function headerKey(client: LeaseClient): Promise<string> {
  return keyIn((await client.authorizationHeader(PROVIDER)).value);
}

// Promotes v2 (or finds it promoted already: this provider has no probe to wait for).
async function rotate(fixture: Fixture): Promise<void> {
  try {
    await fixture.adminCall("RotateKey", { provider: PROVIDER });
  } catch (err) {
    assert.ok(err instanceof BrokerError, String(err));
    assert.equal(err.reason, "NO_PENDING_VERSION", err.message);
  }
}

test("a rotation mid-use reaches the header without an error", TIMEOUT, async () => {
  const fixture = await Fixture.start();
  try {
    const client = fixture.client();
    assert.equal(await headerKey(client), "v1");
    // Keep asking throughout: every answer is a valid key (v1 until the client moved, then v2),
    // never an error.
    const answers: string[] = [];
    let movedToV2 = false;
    const poller = (async () => {
      const deadline = Date.now() + 15_000;
      while (!movedToV2 && Date.now() < deadline) {
        const key = await headerKey(client).catch((err: unknown) => String(err));
        answers.push(key);
        movedToV2 = key === "v2";
        await delay(10);
      }
    })();
    await fixture.stageV2();
    await rotate(fixture);
    await poller;
    const unexpected = answers.filter((k) => k !== "v1" && k !== "v2");
    assert.deepEqual(unexpected, [], "every header carried v1 or v2");
    assert.ok(movedToV2, "the header moved to v2");
    assert.ok(answers.lastIndexOf("v1") < answers.indexOf("v2"), "never back to v1");
    // The client released its lease on the old key when it moved.
    await eventually("no lease left on v1", async () => {
      const resp = await fixture.adminCall<{ leases: unknown[] }>("ListLeases", {
        provider: PROVIDER,
        keyVersion: "v1",
      });
      return resp.leases.length === 0;
    });
  } finally {
    await fixture.cleanup();
  }
});

test("a quarantined key is dropped at once and replaced", TIMEOUT, async () => {
  const fixture = await Fixture.start();
  try {
    const client = fixture.client();
    assert.equal(await headerKey(client), "v1");
    // No replacement yet: once the broker pushed QUARANTINED, calls fail rather than serve v1
    // (its lease has minutes left: default TTL 10m).
    await fixture.adminCall("QuarantineKeyVersion", {
      provider: PROVIDER,
      keyVersion: "v1",
      reason: "leaked in a log",
    });
    let refusal: unknown;
    await eventually(
      "the header stops carrying v1",
      async () => {
        refusal = await client.authorizationHeader(PROVIDER).then(
          (h) => keyIn(h.value),
          (err: unknown) => err,
        );
        return refusal !== "v1";
      },
      5000,
    );
    assert.ok(refusal instanceof BrokerError, `no key to serve: ${String(refusal)}`);
    const answers: string[] = [];
    // The replacement: the next calls carry v2.
    await fixture.stageV2();
    await eventually("the header carries v2", async () => {
      const key = await headerKey(client).catch(() => "error");
      answers.push(key);
      return key === "v2";
    });
    assert.ok(!answers.includes("v1"), "v1 was served after its quarantine");
    assert.equal((await client.currentLease(PROVIDER)).keyVersion, "v2");
  } finally {
    await fixture.cleanup();
  }
});

test("the SDK helper hands out fresh credentials and reports a rotation", TIMEOUT, async () => {
  const fixture = await Fixture.start();
  try {
    const client = fixture.client();
    const creds = providerCredentials(client, PROVIDER);
    const first = await creds.get();
    assert.ok(first.apiKey === LMN_V1, "the first credentials carry v1");
    assert.ok(first.baseURL.startsWith("http"), `baseURL ${first.baseURL}`);
    for (const shown of [inspect(first), String(first), JSON.stringify(first)]) {
      assert.ok(!shown.includes(LMN_V1), "printing credentials shows no key");
    }
    const rebuilt: SdkCredentials[] = [];
    creds.onRotate((c) => {
      rebuilt.push(c);
    });
    await fixture.stageV2();
    await rotate(fixture);
    await eventually("onRotate got v2", () => rebuilt.some((c) => c.apiKey === LMN_V2));
    assert.ok(rebuilt.every((c) => c.apiKey === LMN_V2), "onRotate only reported v2");
    assert.ok((await creds.get()).apiKey === LMN_V2, "get() now returns v2");
  } finally {
    await fixture.cleanup();
  }
});
