// Server-Sent Events over fetch: EventSource cannot send the bearer token, this can. It
// reconnects with Last-Event-ID after a drop, so nothing is missed and nothing repeats.

import { ApiError } from "./api.js";

const RETRY_MS = [500, 1000, 2000, 4000, 8000];
const BLANK_LINE = /\r?\n\r?\n/;

// One SSE block ("id: 7\nevent: step_started\ndata: {...}") as {id, event, data}; comments
// (the server's keep-alive pings) give null.
function parseBlock(block) {
  const fields = { id: null, event: "message", data: [] };
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const at = line.indexOf(":");
    const name = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    if (name === "data") fields.data.push(value);
    else if (name === "id" || name === "event") fields[name] = value;
  }
  return fields.data.length ? { ...fields, data: fields.data.join("\n") } : null;
}

// Follow `path` of the control plane (through the chat service's proxy) until `signal`
// aborts: onOpen() each time the stream (re)opens, onEvent({id, event, data}) per event,
// onError(error) when it drops (it retries) or is refused (401/403/404: it stops).
export function follow(api, path, { signal, onOpen, onEvent, onError }) {
  let lastId = null;
  let failures = 0;
  const run = async () => {
    while (!signal.aborted) {
      try {
        const headers = { Authorization: `Bearer ${api.token() || ""}`, Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const response = await fetch(`${api.base}/api${path}`, { headers, signal });
        if (!response.ok) {
          const body = await response.json().catch(() => ({}));
          throw new ApiError(response.status, body.detail || response.statusText, body);
        }
        failures = 0;
        onOpen();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let match;
          while ((match = BLANK_LINE.exec(buffer))) {
            const event = parseBlock(buffer.slice(0, match.index));
            buffer = buffer.slice(match.index + match[0].length);
            if (!event) continue;
            if (event.id) lastId = event.id;
            onEvent(event);
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        onError(error);
        if ([401, 403, 404].includes(error.status)) return;
      }
      const delay = RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)];
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  };
  run();
}
