// The hand-written Node.js SSE server many teams start with (in the style of
// sse-basics-node.md), written for the benchmark with Node's built-in http module only.
//   GET  /events?user=NAME   a stream (user optional)
//   POST /publish            the body goes to every stream
//   POST /publish?user=NAME  the body goes to that user's streams
// Usage: node node-sse.js PORT
const http = require("http");

const clients = new Set();
const byUser = new Map();
let nextId = 0;

function send(res, message) {
  res.write(message);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (req.method === "GET" && url.pathname === "/events") {
    res.writeHead(200, {
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-cache",
      Connection: "keep-alive",
    });
    res.write("retry: 3000\n\n");
    const user = url.searchParams.get("user");
    clients.add(res);
    if (user) {
      if (!byUser.has(user)) byUser.set(user, new Set());
      byUser.get(user).add(res);
    }
    const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), 15000);
    req.on("close", () => {
      clearInterval(heartbeat);
      clients.delete(res);
      if (user) {
        const set = byUser.get(user);
        set.delete(res);
        if (set.size === 0) byUser.delete(user);
      }
    });
    return;
  }
  if (req.method === "POST" && url.pathname === "/publish") {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const message = `id: ${++nextId}\nevent: bench\ndata: ${body}\n\n`;
      const user = url.searchParams.get("user");
      const targets = user ? byUser.get(user) || [] : clients;
      for (const client of targets) send(client, message);
      res.writeHead(204);
      res.end();
    });
    return;
  }
  res.writeHead(404);
  res.end();
});

// Keep the publisher's connections open between benchmark steps.
server.keepAliveTimeout = 300000;
server.listen(Number(process.argv[2] || 3000), "127.0.0.1", 4096, () => {
  console.log(`node-sse listening on ${server.address().port}`);
});
