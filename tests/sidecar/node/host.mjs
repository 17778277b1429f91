// Test host for the busy light: runs sidecar/busylight/logic.py in real MicroPython (the WebAssembly
// port) under Node.js, with the LED driver and the millisecond clock provided from here.
//
//   node host.mjs cases < scenarios.json   table tests: scenarios of steps in, what the LEDs showed out
//   node host.mjs fuzz SEED COUNT          malformed payloads; prints counters and any escaped error
//   node host.mjs live CONFIG_JSON         MQTT_URL, MQTT_USERNAME, MQTT_PASSWORD from the environment:
//                                          subscribes like the sidecar, feeds each message into the VM,
//                                          prints JSON lines (ready, message, frame, done)
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const HERE = dirname(fileURLToPath(import.meta.url));
const SIDECAR = join(HERE, "..", "..", "..", "sidecar");

const GLUE = `
import sys, json
sys.path.insert(0, "/sidecar")
import jshost
from busylight.logic import BusyLight

light = None

def make(config_json):
    global light
    config = json.loads(config_json)
    light = BusyLight.from_config(
        config, show=lambda p: jshost.show(json.dumps(p)), clock=jshost.now, pixels=config.get("pixels")
    )
    return json.dumps(light.subscriptions())

def feed(topic, payload):
    # umqtt hands the callback bytes for both topic and message
    return light.handle(bytes(topic), bytes(payload))

def tick():
    return light.tick()

def counters():
    return json.dumps(light.counters)

def kinds():
    return json.dumps(light.kinds())
`;

export async function makeVm() {
  let clock = 0;
  const shown = [];
  const out = [];
  const mp = await loadMicroPython({ heapsize: 8 * 1024 * 1024, stdout: (l) => out.push(l), stderr: (l) => out.push(l) });
  const vm = {
    mp,
    shown, // every show() call: { t, pixels }
    set clock(v) { clock = v; },
    get clock() { return clock; },
    realtime: false,
  };
  mp.registerJsModule("jshost", {
    now: () => (vm.realtime ? Math.floor(performance.now()) : clock),
    show: (json) => { shown.push({ t: performance.now(), pixels: JSON.parse(json) }); },
  });
  mp.FS.mkdir("/sidecar");
  mp.FS.mkdir("/sidecar/busylight");
  for (const name of readdirSync(join(SIDECAR, "busylight"))) {
    if (name.endsWith(".py")) {
      mp.FS.writeFile(`/sidecar/busylight/${name}`, readFileSync(join(SIDECAR, "busylight", name)));
    }
  }
  mp.runPython(GLUE);
  const g = (n) => mp.globals.get(n);
  const [make, feed, tick, counters, kinds] = ["make", "feed", "tick", "counters", "kinds"].map(g);
  mp.runPython("_impl = sys.implementation.name");
  vm.implementation = mp.globals.get("_impl");
  vm.make = (config) => JSON.parse(make(JSON.stringify(config)));
  vm.feed = (topic, payload) => {
    const t = typeof topic === "string" ? new TextEncoder().encode(topic) : topic;
    const p = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
    return feed(t, p);
  };
  vm.tick = () => tick();
  vm.counters = () => JSON.parse(counters());
  vm.kinds = () => JSON.parse(kinds());
  return vm;
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

function decodePayload(step) {
  if (step.payload_b64 !== undefined) return new Uint8Array(Buffer.from(step.payload_b64, "base64"));
  return step.payload;
}

async function cases() {
  const scenarios = JSON.parse(await readStdin());
  const vm = await makeVm();
  const results = [];
  for (const sc of scenarios) {
    vm.shown.length = 0;
    vm.clock = 0;
    const subscriptions = vm.make(sc.config);
    const steps = [];
    for (const step of sc.steps) {
      if (step.t !== undefined) vm.clock = step.t;
      const before = vm.shown.length;
      let ret = null, error = null;
      try {
        ret = step.topic !== undefined ? vm.feed(step.topic, decodePayload(step)) : vm.tick();
      } catch (e) {
        error = String(e.message || e).slice(-500);
      }
      steps.push({
        returned: ret,
        error,
        shows: vm.shown.length - before,
        pixels: vm.shown.length ? vm.shown[vm.shown.length - 1].pixels : null,
        kinds: vm.kinds(),
      });
    }
    results.push({ subscriptions, steps, counters: vm.counters() });
  }
  process.stdout.write(JSON.stringify({ implementation: vm.implementation, results }));
}

// --- fuzz: malformed and hostile payloads (a seeded generator, so a failure can be replayed) -----

function prng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

const VALID = [
  { v: 1, online: true, registered: true, state: "idle", extension: "1001", firmware: "0.1.0", since: "2024-05-01T08:00:00.000Z" },
  { v: 1, online: false },
  { v: 1, event_id: "e", seq: 1, type: "call.incoming", ts: "2024-05-01T09:00:00.000Z", device_id: "desk-a", data: {}, call: { call_id: "c-1", direction: "inbound" } },
  { v: 1, event_id: "e", seq: 2, type: "hook.offhook", ts: "2024-05-01T09:00:01.000Z", device_id: "desk-a", data: {} },
  { v: 1, event_id: "e", seq: 3, type: "registration.changed", ts: "2024-05-01T09:00:02.000Z", device_id: "desk-a", data: { registered: true } },
  { v: 1, event_id: "e", seq: 4, type: "call.ended", ts: "2024-05-01T09:00:03.000Z", device_id: "desk-a", data: {}, call: { call_id: "c-1", disposition: "answered" } },
];
const WEIRD = [null, true, false, 0, -1, 1.5, 1e308, "", "x".repeat(300), [], {}, [1, 2], { a: { b: [] } }, "idle", 1, "1"];

function mutate(rand) {
  const pick = (a) => a[Math.floor(rand() * a.length)];
  const base = JSON.parse(JSON.stringify(pick(VALID)));
  const kind = Math.floor(rand() * 10);
  const keys = Object.keys(base).concat(["call", "data", "v", "type", "state", "online"]);
  switch (kind) {
    case 0: { const k = pick(keys); base[k] = pick(WEIRD); return JSON.stringify(base); }
    case 1: { delete base[pick(keys)]; return JSON.stringify(base); }
    case 2: { const s = JSON.stringify(base); return s.slice(0, Math.floor(rand() * s.length)); }
    case 3: { const b = new Uint8Array(Math.floor(rand() * 64)); for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256); return b; }
    case 4: return JSON.stringify(pick(WEIRD));
    case 5: { const n = 1 + Math.floor(rand() * 400); return "[".repeat(n) + "]".repeat(n); }
    case 6: return "{\"v\":1,\"pad\":\"" + "a".repeat(4096) + "\"}";
    case 7: { const s = new TextEncoder().encode(JSON.stringify(base)); const i = Math.floor(rand() * s.length); s[i] = 0xff; return s; }
    case 8: { base.call = pick(WEIRD); base.data = pick(WEIRD); base.type = pick(["call.ended", "call.incoming", "registration.changed", "nope", "call."]); return JSON.stringify(base); }
    default: { base.v = pick([2, 0, "1", 1.0, null, true]); return JSON.stringify(base); }
  }
}

async function fuzz(seed, count) {
  const vm = await makeVm();
  vm.make({ phones: ["desk-a", "desk-b"], blink_ms: 400 });
  const rand = prng(seed);
  const topics = ["deskphone/desk-a/status", "deskphone/desk-a/events", "deskphone/desk-b/events", "deskphone/desk-a", "deskphone//events", "other/desk-a/status", "deskphone/desk-a/events/x", "deskphone/desk-z/status"];
  const escaped = [];
  const returned = {};
  for (let i = 0; i < count; i++) {
    vm.clock = i * 7;
    const topic = rand() < 0.8 ? topics[Math.floor(rand() * 3)] : topics[Math.floor(rand() * topics.length)];
    const payload = mutate(rand);
    try {
      const r = vm.feed(topic, payload);
      returned[typeof r] = (returned[typeof r] || 0) + 1;
      if (i % 50 === 0) vm.tick();
    } catch (e) {
      escaped.push({ i, topic, error: String(e.message || e).slice(-300) });
    }
  }
  // still alive and still right afterwards: a valid sequence works
  const alive = [
    vm.feed("deskphone/desk-a/status", JSON.stringify({ v: 1, online: true, registered: true, state: "busy", since: "2099-01-01T00:00:00.000Z" })),
    vm.kinds()[0],
  ];
  process.stdout.write(JSON.stringify({ implementation: vm.implementation, count, escaped, returned, counters: vm.counters(), alive }));
}

// --- live: the sidecar's MQTT side, with a real broker ------------------------------------------

function emit(obj) { process.stdout.write(JSON.stringify(obj) + "\n"); }

async function live(configJson) {
  const { default: mqtt } = await import("mqtt");
  const config = JSON.parse(configJson);
  const vm = await makeVm();
  vm.realtime = true;
  const topics = vm.make(config);
  const client = mqtt.connect(process.env.MQTT_URL, {
    username: process.env.MQTT_USERNAME || undefined,
    password: process.env.MQTT_PASSWORD || undefined,
    clientId: config.client_id || `busylight-test-${process.pid}`,
    protocolVersion: 4, // umqtt speaks MQTT 3.1.1
    clean: true,
    reconnectPeriod: 200,
  });
  let n = 0;
  let lastFrame = JSON.stringify(vm.shown.length ? vm.shown[vm.shown.length - 1].pixels : null);
  const reportFrames = (from, cause) => {
    for (const s of vm.shown.slice(from)) {
      const j = JSON.stringify(s.pixels);
      if (j !== lastFrame) { lastFrame = j; emit({ frame: s.pixels, t: s.t, cause }); }
    }
  };
  client.on("error", (e) => emit({ error: String(e.message || e) }));
  client.on("connect", () => {
    client.subscribe(topics, { qos: 1 }, (err, granted) => {
      emit({ ready: !err, topics, granted: (granted || []).map((g) => [g.topic, g.qos]), error: err ? String(err) : null });
    });
  });
  client.on("message", (topic, payload) => {
    const arrived = performance.now();
    const wall = Date.now();
    const before = vm.shown.length;
    const changed = vm.feed(topic, new Uint8Array(payload));
    const showAt = vm.shown.length > before ? vm.shown[vm.shown.length - 1].t : null;
    let body = null;
    try { body = JSON.parse(payload.toString("utf8")); } catch { /* reported as is */ }
    n += 1;
    emit({
      message: n, topic, arrived, wall,
      type: body && (body.type || (body.online === false ? "offline" : body.state)),
      stamp: body && (body.ts || body.since || null),
      changed, latency_ms: showAt === null ? null : showAt - arrived,
      pixels: vm.shown.length ? vm.shown[vm.shown.length - 1].pixels : null,
      kinds: vm.kinds(),
    });
    reportFrames(before, `message ${n}`);
  });
  const timer = setInterval(() => { const b = vm.shown.length; vm.tick(); reportFrames(b, "tick"); }, 20);
  process.stdin.resume();
  process.stdin.on("end", () => {
    clearInterval(timer);
    emit({ done: true, counters: vm.counters() });
    client.end(true, () => process.exit(0));
  });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "cases") await cases();
else if (mode === "fuzz") await fuzz(Number(args[0] || 1), Number(args[1] || 2000));
else if (mode === "live") await live(args[0]);
else { console.error("usage: node host.mjs cases|fuzz SEED COUNT|live CONFIG_JSON"); process.exit(2); }
