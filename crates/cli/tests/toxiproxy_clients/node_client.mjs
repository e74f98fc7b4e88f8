// Drives `blastwall toxiproxy` with Toxiproxy's Node client, `toxiproxy-node-client` (npm,
// installed by `npm ci` from this folder's package.json and lockfile). Run by
// ../toxiproxy_clients.rs, which starts the server and a TCP echo upstream:
//
//   node node_client.mjs <API host:port> <echo host:port>
//
// Prints one line per check ("ok <name>" or "FAIL <name>: <why>") and exits 1 if any failed.
import { Toxiproxy, ToxiproxyError } from "toxiproxy-node-client";
import assert from "node:assert/strict";
import { connect } from "node:net";

const [api, echo] = process.argv.slice(2);
const toxiproxy = new Toxiproxy(`http://${api}`);

const TYPES = {
  latency: { latency: 10, jitter: 1 },
  bandwidth: { rate: 1000 },
  slow_close: { delay: 10 },
  timeout: { timeout: 100 },
  reset_peer: { timeout: 100 },
  slicer: { average_size: 64, size_variation: 32, delay: 10 },
  limit_data: { bytes: 4096 },
};
// Generous bounds: the checks prove an effect, never measure speed.
const LATENCY_MS = 300;
const STALL_MS = 500;

/** Sends `data` through a proxy; resolves with what came back before the end (or `idleMs`
 * without data) and how long it took. */
function roundTrip(address, data, idleMs = 10000) {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), address.slice(address.lastIndexOf(":") + 1)];
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const chunks = [];
    const socket = connect({ host, port: Number(port) }, () => socket.write(data));
    const done = (how) => {
      socket.destroy();
      resolve({ back: Buffer.concat(chunks).toString(), ms: performance.now() - started, how });
    };
    socket.setTimeout(idleMs, () => done("idle"));
    socket.on("data", (chunk) => {
      chunks.push(chunk);
      if (Buffer.concat(chunks).length >= data.length) done("echoed");
    });
    socket.on("end", () => done("closed"));
    socket.on("error", reject);
  });
}

/** Asserts `action` fails with the client's error for HTTP status `status`. */
async function rejectsWith(status, action) {
  await assert.rejects(action, (err) => {
    assert.ok(err instanceof ToxiproxyError, `not a ToxiproxyError: ${err}`);
    assert.match(err.message, new RegExp(`status code ${status}$`));
    return true;
  });
}

async function removeAll() {
  for (const proxy of Object.values(await toxiproxy.getAll())) await proxy.remove();
}

const create = (name = "echo") => toxiproxy.createProxy({ name, listen: "127.0.0.1:0", upstream: echo });

const checks = {
  async "the version is text naming the server"() {
    assert.match(await toxiproxy.getVersion(), /version/);
  },
  async "a created proxy is listed with its real address and pipes bytes"() {
    const proxy = await create();
    assert.equal(proxy.name, "echo");
    assert.equal(proxy.enabled, true);
    assert.equal(proxy.upstream, echo);
    assert.doesNotMatch(proxy.listen, /:0$/);
    const all = await toxiproxy.getAll();
    assert.deepEqual(Object.keys(all), ["echo"]);
    assert.equal(all.echo.listen, proxy.listen);
    assert.equal((await toxiproxy.get("echo")).listen, proxy.listen);
    assert.equal((await roundTrip(proxy.listen, "hello")).back, "hello");
  },
  async "every toxic type is accepted on both streams with its attributes"() {
    const proxy = await create();
    for (const stream of ["upstream", "downstream"]) {
      for (const [type, attributes] of Object.entries(TYPES)) {
        const name = `${type}_${stream}`;
        const toxic = await proxy.addToxic({ name, type, stream, toxicity: 1, attributes });
        assert.deepEqual(toxic.toJson(), { name, type, stream, toxicity: 1, attributes });
        const read = await proxy.getToxic(name);
        assert.deepEqual(read.toJson(), toxic.toJson());
      }
    }
  },
  async "a toxic is updated keeping what the update leaves out, then removed"() {
    const proxy = await create();
    const toxic = await proxy.addToxic({
      name: "slow", type: "latency", stream: "downstream", toxicity: 0.5, attributes: { latency: 100, jitter: 0 },
    });
    const updated = await toxic.update({ attributes: { jitter: 7 } });
    assert.deepEqual(updated.attributes, { latency: 100, jitter: 7 });
    assert.equal(updated.toxicity, 0.5);
    await updated.remove();
    await rejectsWith(404, () => proxy.getToxic("slow"));
  },
  async "a disabled proxy refuses connections and an enabled one pipes again"() {
    const proxy = await create();
    const disabled = await proxy.update({ enabled: false });
    assert.equal(disabled.enabled, false);
    await assert.rejects(() => roundTrip(proxy.listen, "x"), /ECONNREFUSED/);
    const enabled = await disabled.update({ enabled: true });
    assert.equal(enabled.enabled, true);
    assert.equal((await roundTrip(proxy.listen, "back")).back, "back");
  },
  async "reset enables every proxy and removes every toxic"() {
    const proxy = await create();
    await proxy.addToxic({ name: "slow", type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: 100, jitter: 0 } });
    await proxy.update({ enabled: false });
    await toxiproxy.reset();
    const again = await toxiproxy.get("echo");
    assert.equal(again.enabled, true);
    await rejectsWith(404, () => again.getToxic("slow"));
  },
  async "populate creates the proxies it lists"() {
    const made = await toxiproxy.populate([
      { name: "one", listen: "127.0.0.1:0", upstream: echo },
      { name: "two", listen: "127.0.0.1:0", upstream: echo },
    ]);
    assert.deepEqual(Object.keys(made).sort(), ["one", "two"]);
    assert.equal((await roundTrip(made.two.listen, "two")).back, "two");
  },
  async "a removed proxy is gone"() {
    const proxy = await create();
    await proxy.remove();
    assert.deepEqual(await toxiproxy.getAll(), {});
    await rejectsWith(404, () => toxiproxy.get("echo"));
  },
  async "errors come back with Toxiproxy's statuses"() {
    const proxy = await create();
    await rejectsWith(409, () => create());
    await rejectsWith(400, () => toxiproxy.createProxy({ name: "no_upstream", listen: "127.0.0.1:0" }));
    await rejectsWith(400, () => proxy.addToxic({ name: "x", type: "no_such_toxic", stream: "downstream", toxicity: 1, attributes: {} }));
    await rejectsWith(400, () => proxy.addToxic({ name: "x", type: "latency", stream: "sideways", toxicity: 1, attributes: {} }));
    await proxy.addToxic({ name: "slow", type: "latency", stream: "downstream", toxicity: 1, attributes: {} });
    await rejectsWith(409, () => proxy.addToxic({ name: "slow", type: "latency", stream: "downstream", toxicity: 1, attributes: {} }));
    await rejectsWith(404, () => toxiproxy.get("nowhere"));
  },
  async "latency delays the echo"() {
    const proxy = await create();
    await proxy.addToxic({ name: "slow", type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: LATENCY_MS, jitter: 0 } });
    const { back, ms } = await roundTrip(proxy.listen, "slow");
    assert.equal(back, "slow");
    assert.ok(ms >= LATENCY_MS, `took ${ms} ms`);
  },
  async "timeout stalls the connection"() {
    const proxy = await create();
    await proxy.addToxic({ name: "stall", type: "timeout", stream: "upstream", toxicity: 1, attributes: { timeout: 0 } });
    const { back, how } = await roundTrip(proxy.listen, "stalled", STALL_MS);
    assert.equal(how, "idle");
    assert.equal(back, "");
  },
  async "limit_data cuts the connection after its bytes"() {
    const proxy = await create();
    await proxy.addToxic({ name: "cut", type: "limit_data", stream: "downstream", toxicity: 1, attributes: { bytes: 5 } });
    const { back, how } = await roundTrip(proxy.listen, "0123456789");
    assert.equal(back, "01234");
    assert.equal(how, "closed");
  },
};

const failed = [];
for (const [name, check] of Object.entries(checks)) {
  try {
    await check();
    console.log(`ok   ${name}`);
  } catch (err) {
    failed.push(name);
    console.log(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
  } finally {
    await removeAll();
  }
}
if (failed.length > 0) {
  console.log(`failed: ${failed.join(", ")}`);
  process.exit(1);
}
