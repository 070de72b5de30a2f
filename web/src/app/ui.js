// A few DOM helpers: the app is plain JavaScript, no framework.
export function $(selector) {
  return document.querySelector(selector);
}

/** An element with attributes and children (strings become text: never HTML). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "checked") node.checked = Boolean(value);
    // Through the CSSOM: the page's Content-Security-Policy allows no inline style attribute.
    else if (name === "style") node.style.cssText = value;
    else if (name === "value") node.value = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child != null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function button(label, onClick, attributes = {}) {
  const node = el("button", { type: "button", ...attributes }, label);
  node.addEventListener("click", onClick);
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function show(node) {
  node.hidden = false;
  return node;
}

export function money(amount) {
  return amount ? `${amount.amount} ${amount.currency}` : "—";
}
