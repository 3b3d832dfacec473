// A bar chart drawn as SVG by hand: a dozen lines of geometry are cheaper than a charting
// library (no build step, nothing to fetch from a CDN, nothing that could run model text).

const SVG = "http://www.w3.org/2000/svg";

function el(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function formatMoney(value, currency) {
  const amount = Number(value);
  const digits = amount !== 0 && Math.abs(amount) < 0.01 ? 6 : 2;
  return `${amount.toFixed(digits)} ${currency}`;
}

// points: [{label, value}], all in one currency.
export function barChart(points, { currency = "USD", title = "Costs" } = {}) {
  const width = 560;
  const height = 220;
  const pad = { top: 16, right: 8, bottom: 48, left: 64 };
  const max = Math.max(...points.map((p) => Number(p.value)), 0) || 1;
  const total = points.reduce((sum, p) => sum + Number(p.value), 0);
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    class: "aipress-chart",
    "aria-label": `${title}: ${points.length} bars, total ${formatMoney(total, currency)}`,
  });
  svg.append(el("title", {}, `${title} (total ${formatMoney(total, currency)})`));
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  for (const fraction of [0, 0.5, 1]) {
    const y = pad.top + plotH * (1 - fraction);
    svg.append(el("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "grid" }));
    svg.append(el("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end", class: "axis" },
      formatMoney(max * fraction, "").trim()));
  }
  const slot = plotW / Math.max(points.length, 1);
  const barW = Math.max(2, Math.min(48, slot * 0.7));
  points.forEach((point, i) => {
    const value = Math.max(0, Number(point.value));
    const h = (value / max) * plotH;
    const x = pad.left + i * slot + (slot - barW) / 2;
    const bar = el("rect", { x, y: pad.top + plotH - h, width: barW, height: Math.max(h, 0.5), class: "bar" });
    bar.append(el("title", {}, `${point.label}: ${formatMoney(point.value, currency)}`));
    svg.append(bar);
    if (points.length <= 12 || i % Math.ceil(points.length / 12) === 0) {
      const label = String(point.label).length > 10 ? String(point.label).slice(5) : String(point.label);
      svg.append(el("text", { x: x + barW / 2, y: height - pad.bottom + 16, "text-anchor": "middle", class: "axis" }, label));
    }
  });
  svg.append(el("text", { x: pad.left, y: height - 8, class: "axis" }, `${currency} · total ${formatMoney(total, currency)}`));
  return svg;
}
