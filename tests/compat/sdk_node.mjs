// Sends the same set of calls as sdk_python.py through Segment's Node.js SDK
// (@segment/analytics-node from npm, installed by tests/setup-node.sh), pointed at the
// collector, unchanged:
//
//     NODE_PATH=<dir>/node_modules node sdk_node.mjs <collector url> <write key> <run id>
//
// Prints, as JSON, every message the SDK reports delivered (its own messageId, timestamp,
// context.library and the fields set here). Exits non-zero on any delivery error.
import { createRequire } from "node:module";

const require = createRequire(process.env.NORTHSTAR_NODE_DIR + "/");
const { Analytics } = require("@segment/analytics-node");

const [url, writeKey, run] = process.argv.slice(2);
const sdk = "segment-node";
const user = `${run}-${sdk}-user`;
const anon = `${run}-${sdk}-anon`;
const analytics = new Analytics({ writeKey, host: url, flushAt: 3, maxRetries: 3 });
const sent = [];
const errors = [];
analytics.on("error", (e) => errors.push(String(e?.reason ?? e)));
const keep = (done) => (err, ctx) => {
  if (err) errors.push(String(err));
  else sent.push(JSON.parse(JSON.stringify(ctx.event)));
  done();
};
const call = (method, params) => new Promise((done) => analytics[method](params, keep(done)));
await Promise.all([
  call("track", { userId: user, event: "Order Completed",
    properties: { sdk, revenue: 42.5, items: [{ sku: "a-1", qty: 2 }] },
    context: { campaign: { name: "fall", source: "newsletter" } } }),
  call("identify", { userId: user, traits: { email: `${sdk}@example.test`, plan: "pro" } }),
  call("page", { userId: user, name: "Pricing", properties: { url: "https://shop.test/pricing" } }),
  call("screen", { userId: user, name: "Home", properties: { tab: "main" } }),
  call("group", { userId: user, groupId: `${run}-${sdk}-group`, traits: { name: "Acme", employees: 12 } }),
  call("alias", { previousId: anon, userId: user }),
  call("track", { anonymousId: anon, event: "Anonymous Visit", properties: { sdk, "ü": "ß" } }),
]);
await analytics.closeAndFlush();
if (errors.length) {
  console.error("SDK delivery errors:", errors);
  process.exit(1);
}
console.log(JSON.stringify({ [sdk]: sent }));
