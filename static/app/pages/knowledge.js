// The knowledge base: upload documents (with progress), watch them being
// processed live, read their passages, and try searches to see what the
// agents would retrieve — with each passage's score, the mode and the page.

import { api } from "../api.js";
import { field, fill, formatBytes, formatDateTime, h, pageTitle, select, statusLine } from "../dom.js";
import { choices } from "../schema.js";

const STATUS_TEXT = { pending: "Waiting", processing: "Processing…", processed: "Processed", failed: "Failed" };

export default {
  title: "Knowledge base",

  async mount(root, { on }) {
    const [{ agents }, modes] = await Promise.all([api.get("/api/agents"), choices("SearchBody", "mode")]);
    const agentName = (id) => (id ? agents.find((a) => a.id === id)?.name || "a deleted agent" : "All agents");
    const agentOptions = [["", "All agents"], ...agents.map((a) => [a.id, a.name])];
    const documents = new Map();

    // ---------- upload ----------

    const uploadStatus = statusLine();
    const file = h("input", { type: "file", required: true, accept: ".pdf,.docx,.txt,.md,.markdown,.html,.htm" });
    const title = h("input", { type: "text", maxlength: "200" });
    const description = h("input", { type: "text", maxlength: "2000" });
    const uploadAgent = select(agentOptions);
    const progress = h("progress", { max: "1", value: "0", hidden: true, "aria-label": "Upload progress" });
    const uploadButton = h("button", { type: "submit", class: "primary" }, "Upload");
    const uploadForm = h("form", { class: "card upload-form", "aria-labelledby": "upload-title" },
      h("h2", { id: "upload-title" }, "Add a document"),
      field("File (PDF, DOCX, Markdown, HTML or text)", file),
      h("div", { class: "row" }, field("Title", title, "Defaults to the file name."), field("Used by", uploadAgent)),
      field("Description", description),
      h("div", { class: "actions" }, uploadButton, progress),
      uploadStatus);
    uploadForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!file.files[0]) return;
      const form = new FormData();
      form.append("file", file.files[0]);
      if (title.value.trim()) form.append("title", title.value.trim());
      if (description.value.trim()) form.append("description", description.value.trim());
      if (uploadAgent.value) form.append("agent_id", uploadAgent.value);
      uploadButton.disabled = true;
      progress.hidden = false;
      progress.value = 0;
      try {
        const uploaded = await api.upload("/api/knowledge-base/upload", form, (share) => {
          progress.value = share;
          uploadStatus.say(`Uploading… ${Math.round(share * 100)}%`);
        });
        uploadStatus.say(`Uploaded “${uploaded.title}”; it is being processed.`);
        upsert(uploaded);
        uploadForm.reset();
      } catch (error) {
        uploadStatus.error(error);
      } finally {
        uploadButton.disabled = false;
        progress.hidden = true;
      }
    });

    // ---------- the list ----------

    const rows = h("tbody");
    const listStatus = statusLine();
    const listTable = h("table", { class: "documents" },
      h("caption", {}, "Documents"),
      h("thead", {}, h("tr", {}, ["Title", "Status", "Passages", "Size", "Used by", "Added", ""].map((t) => h("th", { scope: "col" }, t)))),
      rows);

    function row(doc) {
      const statusCell = h("span", { class: `doc-status ${doc.status}` }, STATUS_TEXT[doc.status] || doc.status);
      const passages = h("details", { class: "passages" }, h("summary", {}, "Passages"));
      passages.addEventListener("toggle", async () => {
        if (!passages.open || passages.dataset.loaded) return;
        passages.dataset.loaded = "1";
        const detail = await api.get(`/api/knowledge-base/${doc.id}`);
        passages.append(h("ol", {}, detail.chunks.map((chunk) => h("li", {},
          h("span", { class: "muted" }, [chunk.page ? `p. ${chunk.page}` : null, chunk.heading, `${chunk.token_count} tokens`].filter(Boolean).join(" · ")),
          h("p", { class: "text" }, chunk.content)))));
      });
      return h("tr", { "data-id": doc.id },
        h("th", { scope: "row" }, doc.title, doc.filename && doc.filename !== doc.title ? h("small", { class: "muted block" }, doc.filename) : null),
        h("td", {}, statusCell,
          doc.error ? h("small", { class: "error block" }, doc.error) : null,
          doc.notice ? h("small", { class: "muted block notice" }, doc.notice) : null),
        h("td", {}, doc.status === "processed" ? String(doc.chunk_count) : "–"),
        h("td", {}, formatBytes(doc.size)),
        h("td", {}, agentName(doc.agent_id)),
        h("td", {}, formatDateTime(doc.created_at)),
        h("td", { class: "actions" },
          doc.status === "processed" && doc.chunk_count ? passages : null,
          doc.status === "failed" ? h("button", { type: "button", class: "small", onclick: () => act(doc, "reprocess") }, "Try again") : null,
          h("button", { type: "button", class: "danger small", "aria-label": `Delete ${doc.title}`, onclick: () => act(doc, "delete") }, "Delete")));
    }

    function render() {
      const sorted = [...documents.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
      fill(rows, ...sorted.map(row));
      if (!sorted.length) rows.append(h("tr", {}, h("td", { colspan: "7", class: "muted" }, "No documents yet.")));
    }

    function upsert(doc) {
      documents.set(doc.id, doc);
      render();
    }

    async function act(doc, action) {
      try {
        if (action === "delete") {
          if (!window.confirm(`Delete “${doc.title}”? Agents stop using it at once.`)) return;
          await api.delete(`/api/knowledge-base/${doc.id}`);
          documents.delete(doc.id);
          render();
          listStatus.say(`Deleted “${doc.title}”.`);
        } else {
          upsert(await api.post(`/api/knowledge-base/${doc.id}/reprocess`));
        }
      } catch (error) {
        listStatus.error(error);
      }
    }

    async function loadAll() {
      try {
        documents.clear();
        (await api.get("/api/knowledge-base")).documents.forEach((d) => documents.set(d.id, d));
        render();
      } catch (error) {
        listStatus.error(error);
      }
    }

    // Each status change arrives live; the document is read again.
    on("document:updated", async ({ document_id }) => {
      try {
        const { chunks, ...doc } = await api.get(`/api/knowledge-base/${document_id}`);
        const before = documents.get(doc.id)?.status;
        upsert(doc);
        if (before !== doc.status && ["processed", "failed"].includes(doc.status)) {
          listStatus.say(`“${doc.title}”: ${STATUS_TEXT[doc.status].toLowerCase()}.`);
        }
      } catch (error) {
        if (error.status === 404 && documents.delete(document_id)) render();
      }
    });
    on("live:reconnected", loadAll);

    // ---------- search playground ----------

    const query = h("input", { type: "search", required: true, maxlength: "2000" });
    const mode = select(modes.map((m) => [m, m]), { value: "hybrid" });
    const limit = h("input", { type: "number", min: "1", max: "50", value: "5" });
    const threshold = h("input", { type: "number", step: "0.01", min: "-1", max: "1000" });
    const searchAgent = select(agentOptions);
    const results = h("ol", { class: "results", "aria-label": "Search results" });
    const searchStatus = statusLine();
    const searchForm = h("form", { class: "card search-form", "aria-labelledby": "search-title" },
      h("h2", { id: "search-title" }, "Search playground"),
      h("p", { class: "muted" }, "What an agent would retrieve for a question. Vector scores are cosine similarities, keyword scores full-text ranks, and hybrid scores the fused rank of both."),
      field("Question", query),
      h("div", { class: "row" },
        field("Mode", mode), field("Results", limit),
        field("Threshold", threshold, "Optional minimum score."), field("As the agent", searchAgent)),
      h("button", { type: "submit", class: "primary" }, "Search"),
      searchStatus, results);
    searchForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { query: query.value, mode: mode.value, limit: Number(limit.value || 5) };
      if (threshold.value !== "") body.threshold = Number(threshold.value);
      if (searchAgent.value) body.agent_id = searchAgent.value;
      try {
        const answer = await api.post("/api/knowledge-base/search", body);
        searchStatus.say(`${answer.results.length} result${answer.results.length === 1 ? "" : "s"} (${answer.mode})`);
        fill(results, ...answer.results.map((r) => h("li", { class: "result" },
          h("div", { class: "meta" },
            h("strong", {}, r.metadata.title || r.metadata.source || "Document"),
            h("span", { class: "score" }, `score ${r.score.toFixed(4)}`),
            h("span", { class: "badge-pill" }, answer.mode),
            r.metadata.page ? h("span", {}, `page ${r.metadata.page}`) : null,
            r.metadata.heading ? h("span", { class: "muted" }, r.metadata.heading) : null),
          h("p", { class: "text" }, r.content))));
      } catch (error) {
        searchStatus.error(error);
      }
    });

    fill(root, pageTitle("Knowledge base"),
      h("div", { class: "grid-2" }, uploadForm, searchForm),
      h("section", { class: "card" }, listTable, listStatus));
    await loadAll();
  },
};
