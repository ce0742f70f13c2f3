// The campaign editor's live preview: on every change, post the form to the preview
// endpoint and show the rendered message, its size, the audience count and any error.
(() => {
  const form = document.getElementById("editor");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let sequence = 0;
  async function refresh() {
    const mine = ++sequence;
    const response = await fetch(form.dataset.preview, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
    });
    if (mine !== sequence || !response.ok) return;
    const shown = await response.json();
    const error = $("preview-error");
    if (shown.error) {
      const where = shown.error.line ? ` (line ${shown.error.line}, column ${shown.error.column})` : "";
      error.textContent = shown.error.message + where;
      error.hidden = false;
    } else {
      error.hidden = true;
    }
    $("preview-title").textContent = shown.fields ? shown.fields.title : "";
    $("preview-body").textContent = shown.fields ? shown.fields.body : "";
    $("preview-bytes").textContent = shown.payload_bytes == null ? "" :
      `Payload ${shown.payload_bytes.toLocaleString()} of ${shown.payload_limit.toLocaleString()} bytes`;
    $("preview-count").textContent = shown.count == null ?
      (shown.count_error ? `Count: ${shown.count_error}` : "") :
      `${shown.count.toLocaleString()} matching recipient${shown.count === 1 ? "" : "s"} for this sample`;
  }
  // Operators by type: only those that apply to the row's attribute stay selectable.
  const picker = JSON.parse($("picker").textContent);
  function rowType(prefix) {
    const attribute = $(prefix + "attribute").value.trim();
    if (picker.builtins.includes(attribute)) return picker.types[attribute];
    return $(prefix + "type").value || picker.types[attribute] || "string";
  }
  function limitOperators(prefix) {
    const allowed = picker.operators[rowType(prefix)] || [];
    const select = $(prefix + "operator");
    for (const option of select.options) option.disabled = !allowed.includes(option.value);
    if (select.selectedOptions[0]?.disabled) select.value = allowed[0];
    $(prefix + "type").disabled = picker.builtins.includes($(prefix + "attribute").value.trim());
  }
  document.querySelectorAll(".condition").forEach((row) => {
    const prefix = row.querySelector("input").id.replace(/attribute$/, "");
    limitOperators(prefix);
    row.addEventListener("input", () => limitOperators(prefix));
    row.addEventListener("change", () => limitOperators(prefix));
  });
  function showChannel() {  // only the chosen channel's section (all of them without JS)
    const channel = $("channel").value;
    document.querySelectorAll(".channel-part").forEach((part) => {
      part.hidden = !part.dataset.channels.split(" ").includes(channel);
    });
  }
  $("channel").addEventListener("change", showChannel);
  showChannel();
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 250); });
  form.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(refresh, 50); });
  refresh();
})();
