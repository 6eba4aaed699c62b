// dataask FilePicker: choose or drop several files; each is sent to the kernel in chunks.
//
// Protocol (custom widget messages), one file at a time:
//   -> {type: "begin", id, name, size}       <- {type: "ready", id} | {type: "refused", id, message}
//   -> {type: "chunk", id, offset} + bytes    <- {type: "ack", id, received}
//   -> {type: "end", id}                      <- {type: "done", id, ok, message}
// The kernel checks name and size before any byte is sent, and again while receiving; at most
// `window` chunks are in flight, so a large file never sits whole in a websocket buffer.

function h(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

const mb = (n) => (n / 1048576).toFixed(1) + " MB";

function render({ model, el }) {
  const root = h("div", "dataask-upload");
  const zone = h("div", "dataask-drop");
  const input = h("input");
  input.type = "file";
  input.multiple = true;
  input.style.display = "none";
  const choose = h("button", "dataask-btn", "Choose files…");
  const hint = h("span", "dataask-drop-hint");
  const progress = h("div", "dataask-progress");
  zone.append(choose, hint, input);
  root.append(zone, progress);
  el.append(root);

  const draw = () => {
    input.accept = model.get("accept");
    hint.textContent = ` or drop ${model.get("accept").replaceAll(",", ", ")} files here (up to ${mb(
      model.get("max_bytes"),
    )} each)`;
    const busy = model.get("busy");
    choose.disabled = busy;
    zone.classList.toggle("dataask-busy", busy);
  };
  model.on("change:accept", draw);
  model.on("change:max_bytes", draw);
  model.on("change:busy", draw);
  draw();

  // replies from the kernel, by file id
  const waiting = new Map();
  const acked = new Map();
  const onMsg = (msg) => {
    if (!msg || !msg.id) return;
    if (msg.type === "ack") acked.set(msg.id, msg.received);
    const resolve = waiting.get(msg.id);
    if (resolve) resolve(msg);
  };
  model.on("msg:custom", onMsg);
  const next = (id) =>
    new Promise((resolve) => {
      waiting.set(id, (msg) => {
        waiting.delete(id);
        resolve(msg);
      });
    });

  let counter = 0;
  async function sendFile(file) {
    const id = `${Date.now()}-${++counter}`;
    const chunk = model.get("chunk_bytes");
    const windowBytes = chunk * model.get("window");
    let reply = next(id);
    model.send({ type: "begin", id, name: file.name, size: file.size });
    let msg = await reply;
    if (msg.type !== "ready") return;
    acked.set(id, 0);
    let offset = 0;
    while (offset < file.size) {
      const buf = await file.slice(offset, offset + chunk).arrayBuffer();
      while (offset - acked.get(id) >= windowBytes) {
        msg = await next(id);
        if (msg.type !== "ack") return;
      }
      model.send({ type: "chunk", id, offset }, undefined, [buf]);
      offset += buf.byteLength;
      progress.textContent = `sending ${file.name}: ${mb(offset)} of ${mb(file.size)}`;
    }
    while (acked.get(id) < file.size) {
      msg = await next(id);
      if (msg.type !== "ack") return;
    }
    reply = next(id);
    progress.textContent = `reading ${file.name}…`;
    model.send({ type: "end", id });
    await reply;
  }

  async function sendAll(files) {
    for (const file of files) {
      try {
        await sendFile(file);
      } catch (err) {
        model.send({ type: "failed", name: file.name, message: String(err) });
      }
    }
    progress.textContent = "";
    input.value = "";
  }

  choose.addEventListener("click", () => input.click());
  input.addEventListener("change", () => sendAll(Array.from(input.files || [])));
  zone.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    zone.classList.add("dataask-over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dataask-over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("dataask-over");
    sendAll(Array.from((ev.dataTransfer && ev.dataTransfer.files) || []));
  });
  return () => model.off("msg:custom", onMsg);
}

export default { render };
