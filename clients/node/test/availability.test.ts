// The broker going away: a restart the client rides through (its lease renewed after it, or
// re-acquired when the broker forgot it), and an outage longer than the lease (the held lease
// serves until it expires, never after).
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";

import { BrokerError, Status, type Lease } from "../dist/index.js";
import { Fixture, PROVIDER, eventually, freeLoopbackPort, keyIn } from "./fixture.js";

const TIMEOUT = { timeout: 30_000 };
const TTL_SECONDS = 3;
// The restart tests' lease outlives a stop and start of the broker with room to spare (an ASan
// build of the broker takes seconds for each), or the lease expires during the restart.
const RESTART_TTL_SECONDS = 10;
const RESTART_TIMEOUT = { timeout: 60_000 };

// Restarts the broker under a client that keeps asking for headers; returns the lease the client
// held before and after (renewed or re-acquired by the restarted broker), and any failed call.
async function restartUnderLoad(fixture: Fixture): Promise<{ before: Lease; after: Lease }> {
  const client = fixture.client({ ttlSeconds: RESTART_TTL_SECONDS, retryIntervalMs: 100 });
  const acquired = await client.currentLease(PROVIDER);
  // Stop right after a renewal: the lease then has its whole lifetime to cover the restart.
  await eventually(
    "a first renewal",
    async () => (await client.currentLease(PROVIDER)).renewCount > acquired.renewCount,
    20_000,
  );
  const before = await client.currentLease(PROVIDER);
  const failures: string[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      try {
        const key = keyIn((await client.authorizationHeader(PROVIDER)).value);
        if (key !== "v1") failures.push(`header carried ${key}`);
      } catch (err) {
        failures.push(String(err));
      }
      await delay(25);
    }
  })();
  try {
    assert.equal(await fixture.broker?.stop(), 0, "broker exits cleanly on SIGTERM");
    const stopped = Date.now();
    await fixture.startBroker();
    // Any lease the first broker issued or renewed expires by stopped + TTL.
    await eventually(
      "a lease from the restarted broker",
      async () =>
        (await client.currentLease(PROVIDER)).expiresAt.getTime() >
        stopped + RESTART_TTL_SECONDS * 1000,
      25_000,
    );
  } finally {
    polling = false;
    await poller;
  }
  assert.deepEqual(failures, [], "every call during the restart got the key");
  return { before, after: await client.currentLease(PROVIDER) };
}

test("a broker restart: the lease is renewed after it, no call fails", RESTART_TIMEOUT, async () => {
  // A fixed port, so the restarted broker is where the client's channel points.
  const fixture = await Fixture.start({ listen: `127.0.0.1:${await freeLoopbackPort()}` });
  try {
    const { before, after } = await restartUnderLoad(fixture);
    assert.equal(after.leaseId, before.leaseId, "renewed (the broker keeps leases on disk)");
    assert.ok(after.renewCount > before.renewCount);
  } finally {
    await fixture.cleanup();
  }
});

test("a broker restart that forgot the lease: the client re-acquires", RESTART_TIMEOUT, async () => {
  const fixture = await Fixture.start({
    listen: `127.0.0.1:${await freeLoopbackPort()}`,
    extra: "state: {memory: {}}\n",
  });
  try {
    const { before, after } = await restartUnderLoad(fixture);
    assert.notEqual(after.leaseId, before.leaseId, "a new lease (the renewal was NOT_FOUND)");
    assert.equal(after.keyVersion, "v1");
  } finally {
    await fixture.cleanup();
  }
});

test("an outage longer than the lease: served until expiry, then fails", TIMEOUT, async () => {
  const fixture = await Fixture.start();
  try {
    const client = fixture.client({ ttlSeconds: 2, retryIntervalMs: 100 });
    assert.equal(keyIn((await client.authorizationHeader(PROVIDER)).value), "v1");
    await fixture.broker?.kill();
    // No broker left to renew it: this is the lease's final expiry.
    const expiresAt = (await client.currentLease(PROVIDER)).expiresAt.getTime();
    let served = 0;
    let firstError: unknown;
    let errorsAfter = 0;
    const deadline = expiresAt + 10_000;
    while (errorsAfter < 3 && Date.now() < deadline) {
      const asked = Date.now();
      try {
        const key = keyIn((await client.authorizationHeader(PROVIDER)).value);
        assert.ok(asked < expiresAt, `a key was served ${Date.now() - expiresAt} ms after expiry`);
        assert.ok(firstError === undefined, "a key was served after a call had failed");
        assert.equal(key, "v1");
        ++served;
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        firstError ??= err;
        ++errorsAfter;
      }
      await delay(50);
    }
    assert.ok(served > 0, "the held lease served while the broker was down");
    assert.ok(firstError instanceof BrokerError, `failed with ${String(firstError)}`);
    assert.equal(firstError.code, Status.UNAVAILABLE, firstError.message);
    assert.match(firstError.message, /lease expired at/);
    assert.ok(errorsAfter >= 3);
  } finally {
    await fixture.cleanup();
  }
});

test("renewals keep their cadence as the lease ages", TIMEOUT, async () => {
  // Each renewal comes 2/3 of a grant after the previous one (the lease's issuedAt stays the
  // first grant's: a schedule measured from it would renew ever sooner). Slower is fine, sooner
  // is the bug: four renewals of a 3 s lease take at least about 4 × 2 s.
  const fixture = await Fixture.start();
  try {
    const client = fixture.client({ ttlSeconds: TTL_SECONDS });
    const start = Date.now();
    await client.currentLease(PROVIDER);
    await eventually(
      "four renewals",
      async () => (await client.currentLease(PROVIDER)).renewCount >= 4,
      20_000,
    );
    const elapsed = Date.now() - start;
    assert.ok(elapsed >= 4 * TTL_SECONDS * 1000 * (2 / 3) * 0.9, `4 renewals in ${elapsed} ms`);
  } finally {
    await fixture.cleanup();
  }
});
