// The hub's public REST API (/api/..., documented at /api/openapi.json).
// Every failure becomes an ApiError carrying the hub's {error, code, details}.

import { session } from "./session.js";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `Request failed (${status})`);
    this.status = status;
    this.code = body?.code || "HTTP_" + status;
    this.details = body?.details || {};
  }
}

function url(path, query) {
  const target = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(name, value);
  }
  return target;
}

function authHeaders(headers = {}) {
  return session.token ? { Authorization: `Bearer ${session.token}`, ...headers } : headers;
}

function expired(status, body) {
  // A token that stopped working ends the session; the router shows the log-in.
  if (status === 401 && session.token && ["INVALID_TOKEN", "UNAUTHORIZED"].includes(body?.code)) {
    session.end();
  }
}

async function request(method, path, { body, query, headers } = {}) {
  const options = { method, headers: authHeaders(headers) };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url(path, query), options);
  } catch (_) {
    throw new ApiError(0, { error: "The hub cannot be reached", code: "NETWORK_ERROR" });
  }
  if (response.status === 204) return null;
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    expired(response.status, payload);
    throw new ApiError(response.status, payload);
  }
  return payload;
}

export const api = {
  get: (path, query) => request("GET", path, { query }),
  post: (path, body, options) => request("POST", path, { body, ...options }),
  patch: (path, body) => request("PATCH", path, { body }),
  put: (path, body) => request("PUT", path, { body }),
  delete: (path) => request("DELETE", path),

  /** A multipart upload with progress (fetch cannot report upload progress). */
  upload(path, form, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      });
      xhr.addEventListener("load", () => {
        let payload = null;
        try { payload = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300) resolve(payload);
        else {
          expired(xhr.status, payload);
          reject(new ApiError(xhr.status, payload));
        }
      });
      xhr.addEventListener("error", () =>
        reject(new ApiError(0, { error: "The upload failed: the hub cannot be reached", code: "NETWORK_ERROR" })));
      xhr.send(form);
    });
  },

  /** Saves an authenticated download (GDPR exports) as a file. */
  async download(path, filename) {
    const response = await fetch(url(path), { headers: authHeaders() });
    if (!response.ok) {
      const payload = await response.json().catch(() => null);
      expired(response.status, payload);
      throw new ApiError(response.status, payload);
    }
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  },
};

/** A request with a publishable key, as a website would make it (the agent test chat). */
export async function publicRequest(method, path, key, { body, conversationToken } = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (conversationToken) headers["X-Conversation-Token"] = conversationToken;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url(path), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, payload);
  return payload;
}
