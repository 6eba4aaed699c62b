// Small DOM helpers for the panel's views.

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) {
      continue;
    }
    if (key === 'class') {
      node.className = String(value);
    } else if (key === 'text') {
      node.textContent = String(value);
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child);
    }
  }
  return node;
}

export function button(
  label: string,
  onClick: (ev: MouseEvent) => void,
  attrs: Record<string, string | boolean | undefined> = {}
): HTMLButtonElement {
  const b = h('button', { type: 'button', class: 'dataask-button', ...attrs }, label);
  b.addEventListener('click', onClick);
  return b;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
