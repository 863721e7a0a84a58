// The webhook benchmark's receiver (Node's own http, no packages): answers
// every POST 204 at once and keeps, per delivery, the time from the event's
// created_at (the database's insert time, on this machine's clock) to its
// arrival. GET /stats answers {count, first_ms, last_ms, p50_ms, p99_ms,
// max_ms}. Usage: node bench/webhook_receiver.js PORT
const http = require("http");

const port = Number(process.argv[2]);
const latencies = [];
let first = 0;
let last = 0;

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const server = http.createServer((req, res) => {
  if (req.method === "GET") {
    const sorted = Float64Array.from(latencies).sort();
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({
      count: latencies.length,
      first_ms: first,
      last_ms: last,
      p50_ms: quantile(sorted, 0.5),
      p99_ms: quantile(sorted, 0.99),
      max_ms: quantile(sorted, 1),
    }));
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const now = Date.now();
    const event = JSON.parse(Buffer.concat(chunks));
    latencies.push(now - Date.parse(event.created_at));
    if (first === 0) first = now;
    last = now;
    res.writeHead(204);
    res.end();
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, "127.0.0.1");
