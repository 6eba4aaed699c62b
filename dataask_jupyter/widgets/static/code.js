// dataask CodeView: the code behind an answer, folded, with "Copy" and "Insert as new cell".
//
// Inserting a cell, in order of preference:
//  1. a "dataask:insert-cell" DOM event: the dataask JupyterLab extension (when installed)
//     handles it with the notebook API and calls preventDefault();
//  2. JupyterLab 4 / Notebook 7: the ipywidgets manager of a notebook output knows its document
//     context; its shared model inserts a code cell right below the cell showing this widget
//     (found by the cell's data-windowed-list-index, or its position among the cells);
//  3. elsewhere (VS Code, Colab, classic Notebook): copy the code to the clipboard.
// The kernel is not involved: set_next_input only works in reply to an execute request.

function h(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_err) {
    const area = h("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (_e) {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

function cellIndex(el, cellsLength) {
  const cell = el.closest(".jp-Cell");
  if (!cell) return cellsLength;
  const windowed = cell.dataset.windowedListIndex;
  if (windowed !== undefined && windowed !== "") return parseInt(windowed, 10) + 1;
  const siblings = Array.from(cell.parentElement ? cell.parentElement.children : []).filter((c) =>
    c.classList.contains("jp-Cell"),
  );
  const i = siblings.indexOf(cell);
  return i < 0 ? cellsLength : i + 1;
}

function insertViaNotebook(model, el, code) {
  const manager = model.widget_manager;
  let context = null;
  try {
    context = manager && manager.context;
  } catch (_err) {
    context = null;
  }
  const shared = context && context.model && context.model.sharedModel;
  if (!shared || typeof shared.insertCell !== "function" || !Array.isArray(shared.cells)) {
    return false;
  }
  const index = Math.min(cellIndex(el, shared.cells.length), shared.cells.length);
  shared.insertCell(index, { cell_type: "code", source: code, metadata: { trusted: false } });
  return true;
}

function render({ model, el }) {
  const root = h("div", "dataask-code");
  const details = h("details");
  const summary = h("summary");
  const label = h("span", "dataask-code-label");
  const tools = h("span", "dataask-code-tools");
  const copy = h("button", "dataask-btn", "Copy");
  const insert = h("button", "dataask-btn dataask-insert", "Insert as new cell");
  const status = h("span", "dataask-code-status");
  copy.title = "copy the code to the clipboard";
  insert.title = "add the code as a new cell below (it is not run)";
  tools.append(copy, insert, status);
  summary.append(label, tools);
  const pre = h("pre");
  const codeEl = h("code");
  pre.append(codeEl);
  details.append(summary, pre);
  root.append(details);
  el.append(root);

  let timer = null;
  const say = (text) => {
    status.textContent = text;
    clearTimeout(timer);
    timer = setTimeout(() => (status.textContent = ""), 4000);
  };
  const draw = () => {
    label.textContent = model.get("label");
    codeEl.textContent = model.get("code");
    details.open = model.get("expanded");
    root.classList.toggle("dataask-failed", model.get("failed"));
  };
  details.addEventListener("toggle", () => {
    if (details.open !== model.get("expanded")) {
      model.set("expanded", details.open);
      model.save_changes();
    }
  });

  // buttons sit inside <summary>: keep their clicks from folding the code
  copy.addEventListener("click", async (ev) => {
    ev.preventDefault();
    ev.stopPropagation();
    const ok = await copyText(model.get("code"));
    say(ok ? "copied" : "could not copy: select the code and copy it");
    model.send({ event: ok ? "copied" : "copy-failed" });
  });
  insert.addEventListener("click", async (ev) => {
    ev.preventDefault();
    ev.stopPropagation();
    const code = model.get("code");
    const request = new CustomEvent("dataask:insert-cell", {
      detail: { code },
      bubbles: true,
      cancelable: true,
    });
    let how = null;
    if (!el.dispatchEvent(request)) {
      how = "extension";
    } else if (insertViaNotebook(model, el, code)) {
      how = "notebook";
    } else if (await copyText(code)) {
      how = "clipboard";
    }
    if (how === "clipboard") say("copied: paste it into a new cell");
    else if (how) say("inserted below");
    else say("could not insert: copy the code instead");
    model.send({ event: "insert", how: how || "failed" });
  });

  model.on("change:code", draw);
  model.on("change:label", draw);
  model.on("change:expanded", draw);
  model.on("change:failed", draw);
  draw();
}

export default { render };
