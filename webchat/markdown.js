// A small, safe markdown renderer: it builds DOM nodes and only ever sets text, so model
// output cannot inject HTML or script (no innerHTML anywhere). Links are http(s) only.

const INLINE = /(\*\*[^*]+\*\*|`[^`]+`|\[[^\]]+\]\([^)\s]+\)|https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;

function safeHref(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function link(text, url) {
  const href = safeHref(url);
  if (!href) return document.createTextNode(text);
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function inline(text, parent) {
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) parent.append(text.slice(last, match.index));
    const token = match[0];
    if (token.startsWith("**")) {
      const strong = document.createElement("strong");
      strong.textContent = token.slice(2, -2);
      parent.append(strong);
    } else if (token.startsWith("`")) {
      const code = document.createElement("code");
      code.textContent = token.slice(1, -1);
      parent.append(code);
    } else if (token.startsWith("[")) {
      const [, label, url] = token.match(/^\[([^\]]+)\]\(([^)\s]+)\)$/);
      parent.append(link(label, url));
    } else {
      parent.append(link(token, token));
    }
    last = match.index + token.length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  let list = null;
  let paragraph = null;
  for (const line of String(text).split("\n")) {
    const item = line.match(/^\s*[-*]\s+(.*)$/);
    if (item) {
      paragraph = null;
      if (!list) {
        list = document.createElement("ul");
        fragment.append(list);
      }
      const li = document.createElement("li");
      inline(item[1], li);
      list.append(li);
    } else if (!line.trim()) {
      list = null;
      paragraph = null;
    } else {
      list = null;
      if (!paragraph) {
        paragraph = document.createElement("p");
        fragment.append(paragraph);
      } else {
        paragraph.append(document.createElement("br"));
      }
      inline(line, paragraph);
    }
  }
  return fragment;
}
