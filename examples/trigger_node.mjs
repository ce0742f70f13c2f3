// Node 18+ with the built-in fetch: the same call against hosted Clix or Clarion.
//   CLIX_PROJECT_ID=... CLIX_API_KEY=... CLIX_BASE_URL=... node examples/trigger_node.mjs CAMPAIGN_ID STORE
const base = process.env.CLIX_BASE_URL ?? "https://api.clix.so";
const [campaignId, store] = process.argv.slice(2);

async function trigger(attempt = 1) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000); // a finite timeout
  try {
    const res = await fetch(`${base}/api/v1/campaigns/${campaignId}:trigger`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "X-Clix-Project-ID": process.env.CLIX_PROJECT_ID,
        "X-Clix-API-Key": process.env.CLIX_API_KEY, // from the environment, never logged
      },
      body: JSON.stringify({ properties: { store_location: store, order_id: "N-1" } }),
      signal: controller.signal,
    });
    if (res.status >= 500 && attempt < 3) return trigger(attempt + 1); // transient only
    const body = await res.json();
    if (!res.ok) throw new Error(`trigger failed: ${res.status} ${JSON.stringify(body.error)}`);
    return body.trigger_id;
  } finally {
    clearTimeout(timer);
  }
}

console.log(await trigger());
