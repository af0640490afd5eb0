// A readable, offline rendering of /openapi.json (Swagger UI needs its scripts from a CDN).
"use strict";

const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const md = (s) => esc(s).replace(/`([^`]+)`/g, "<code>$1</code>").replace(/\*\*([^*]+)\*\*/g, "<b>$1</b>")
  .replace(/\n\n/g, "</p><p>").replace(/\n\* /g, "<br>• ").replace(/^\* /, "• ");

function typeOf(schema, spec) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.anyOf) return schema.anyOf.map((s) => typeOf(s, spec)).join(" | ");
  if (schema.type === "array") return `${typeOf(schema.items, spec)}[]`;
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.minimum !== undefined && schema.maximum !== undefined) return `${schema.type || "number"}, ${schema.minimum} to ${schema.maximum}`;
  return schema.format === "binary" ? "file" : (schema.type || "object");
}

function fields(schema, spec) {
  if (schema && schema.$ref) schema = spec.components.schemas[schema.$ref.split("/").pop()];
  const props = (schema && schema.properties) || {};
  const req = new Set((schema && schema.required) || []);
  const rows = Object.entries(props).map(([k, v]) => `<tr><td><code>${esc(k)}</code>${req.has(k) ? " <small>required</small>" : ""}</td>
    <td>${esc(typeOf(v, spec))}</td><td>${md(v.description || v.title || "")}</td></tr>`);
  return rows.length ? `<table>${rows.join("")}</table>` : "";
}

async function main() {
  const spec = await (await fetch("/openapi.json")).json();
  document.title = `${spec.info.title} · HTTP API`;
  document.getElementById("api-version").textContent = `${spec.info.title} ${spec.info.version} · OpenAPI ${spec.openapi}`;
  document.getElementById("api-intro").innerHTML = `<h2>Overview</h2><p>${md(spec.info.description)}</p>`;
  const out = [];
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const params = (op.parameters || []).map((p) => `<tr><td><code>${esc(p.name)}</code> <small>${esc(p.in)}</small></td>
        <td>${esc(typeOf(p.schema, spec))}</td><td>${md(p.description || "")}</td></tr>`).join("");
      const body = op.requestBody ? Object.entries(op.requestBody.content).map(([ct, c]) =>
        `<h4>Body <code>${esc(ct)}</code></h4>${fields(c.schema, spec)}`).join("") : "";
      const codes = Object.entries(op.responses || {}).map(([code, r]) =>
        `<span class="code c${code[0]}">${esc(code)}</span> ${esc(r.description || "")}`).join("<br>");
      out.push(`<section class="card endpoint"><h3><span class="verb ${method}">${method.toUpperCase()}</span> <code>${esc(path)}</code></h3>
        <p class="summary">${md(op.summary || "")}</p>${op.description ? `<p>${md(op.description)}</p>` : ""}
        ${params ? `<h4>Parameters</h4><table>${params}</table>` : ""}${body}<h4>Responses</h4><p>${codes}</p></section>`);
    }
  }
  document.getElementById("api-endpoints").innerHTML = out.join("");
}
main();
