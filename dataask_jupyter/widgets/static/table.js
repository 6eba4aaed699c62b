// dataask DataTable front end: draws the page the kernel sent; sorting and paging are requests.
// Every value is set with textContent (never innerHTML): cells hold data from files and LLM code.

const fmt = (n) => Number(n).toLocaleString("en-US");

function h(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render({ model, el }) {
  const root = h("div", "dataask-table");
  const caption = h("div", "dataask-table-caption");
  const scroll = h("div", "dataask-table-scroll");
  const table = h("table");
  const thead = h("thead");
  const tbody = h("tbody");
  table.append(thead, tbody);
  scroll.append(table);

  const bar = h("div", "dataask-table-bar");
  const first = h("button", "dataask-btn", "«");
  const prev = h("button", "dataask-btn", "‹");
  const next = h("button", "dataask-btn", "›");
  const last = h("button", "dataask-btn", "»");
  first.title = "first page";
  prev.title = "previous page";
  next.title = "next page";
  last.title = "last page";
  const pageInput = h("input", "dataask-page-input");
  pageInput.type = "number";
  pageInput.min = "1";
  pageInput.title = "go to page";
  const pageOf = h("span", "dataask-page-of");
  const sizeSelect = h("select", "dataask-page-size");
  sizeSelect.title = "rows per page";
  const info = h("span", "dataask-table-info");
  bar.append(first, prev, h("span", null, "Page "), pageInput, pageOf, next, last, sizeSelect, info);
  root.append(caption, scroll, bar);
  el.append(root);

  const pages = () => Math.max(1, Math.ceil(model.get("total_rows") / Math.max(1, model.get("page_size"))));
  const goTo = (p) => {
    const target = Math.min(Math.max(0, p), pages() - 1);
    if (target !== model.get("page")) {
      model.set("page", target);
      model.save_changes();
    }
  };

  function drawHeader() {
    thead.replaceChildren();
    const tr = h("tr");
    const sortBy = model.get("sort_by");
    const asc = model.get("ascending");
    for (const col of model.get("columns")) {
      const th = h("th", (col.index ? "dataask-index " : "") + (col.numeric ? "dataask-num" : ""));
      const label = h("span", "dataask-th-label", col.label);
      th.append(label);
      th.title = `${col.label || "(index)"}: ${col.dtype}. Click to sort.`;
      if (col.label === sortBy) {
        th.append(h("span", "dataask-sort", asc ? " ▲" : " ▼"));
        th.classList.add("dataask-sorted");
      }
      th.dataset.column = col.label;
      if (col.label !== "" || !col.index) {
        th.addEventListener("click", () => {
          // cycle: ascending -> descending -> original order
          if (model.get("sort_by") !== col.label) {
            model.set("sort_by", col.label);
            model.set("ascending", true);
          } else if (model.get("ascending")) {
            model.set("ascending", false);
          } else {
            model.set("sort_by", "");
            model.set("ascending", true);
          }
          model.set("page", 0);
          model.save_changes();
        });
      }
      tr.append(th);
    }
    thead.append(tr);
  }

  function drawBody() {
    tbody.replaceChildren();
    const cols = model.get("columns");
    for (const row of model.get("page_rows")) {
      const tr = h("tr");
      row.forEach((cell, i) => {
        const col = cols[i] || {};
        const td = h("td", (col.index ? "dataask-index " : "") + (col.numeric ? "dataask-num" : ""));
        if (cell === null) {
          td.append(h("span", "dataask-null", "null"));
        } else {
          td.textContent = cell;
          if (cell.length > 60) td.title = cell;
        }
        tr.append(td);
      });
      tbody.append(tr);
    }
    if (!model.get("page_rows").length) {
      const tr = h("tr");
      const td = h("td", "dataask-empty", "no rows");
      td.colSpan = Math.max(1, cols.length);
      tr.append(td);
      tbody.append(tr);
    }
  }

  function drawBar() {
    const total = model.get("total_rows");
    const size = model.get("page_size");
    const page = model.get("page");
    const start = total ? page * size + 1 : 0;
    const end = Math.min(total, (page + 1) * size);
    pageInput.value = String(page + 1);
    pageInput.max = String(pages());
    pageOf.textContent = ` of ${fmt(pages())}`;
    first.disabled = prev.disabled = page <= 0;
    next.disabled = last.disabled = page >= pages() - 1;
    info.textContent = `Rows ${fmt(start)}–${fmt(end)} of ${fmt(total)}`;
    sizeSelect.replaceChildren();
    for (const n of model.get("page_sizes")) {
      const opt = h("option", null, `${n} rows`);
      opt.value = String(n);
      opt.selected = n === size;
      sizeSelect.append(opt);
    }
    const cols = model.get("columns").length;
    const text = model.get("caption");
    caption.textContent =
      (text ? `${text} · ` : "") +
      `${fmt(total)} row${total === 1 ? "" : "s"} × ${fmt(cols)} column${cols === 1 ? "" : "s"}`;
  }

  first.addEventListener("click", () => goTo(0));
  prev.addEventListener("click", () => goTo(model.get("page") - 1));
  next.addEventListener("click", () => goTo(model.get("page") + 1));
  last.addEventListener("click", () => goTo(pages() - 1));
  pageInput.addEventListener("change", () => goTo(parseInt(pageInput.value, 10) - 1 || 0));
  sizeSelect.addEventListener("change", () => {
    model.set("page_size", parseInt(sizeSelect.value, 10));
    model.set("page", 0);
    model.save_changes();
  });

  const onRows = () => {
    drawBody();
    drawBar();
  };
  const onSort = () => drawHeader();
  model.on("change:page_rows", onRows);
  model.on("change:columns", () => {
    drawHeader();
    onRows();
  });
  model.on("change:sort_by", onSort);
  model.on("change:ascending", onSort);
  model.on("change:page", drawBar);
  model.on("change:page_size", drawBar);
  model.on("change:total_rows", drawBar);
  model.on("change:caption", drawBar);
  drawHeader();
  onRows();
}

export default { render };
