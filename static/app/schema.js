// The choices the API offers (tools, deal stages, search modes) and its
// defaults come from /api/openapi.json, so the dashboard never keeps a second
// copy of them.

let loading = null;

function load() {
  loading ||= fetch("/api/openapi.json").then((response) => response.json())
    .catch((error) => { loading = null; throw error; });
  return loading;
}

/** The default of each property of `model` that has one. */
export async function defaults(model) {
  const document = await load();
  const properties = document.components.schemas[model].properties;
  return Object.fromEntries(Object.entries(properties)
    .filter(([, schema]) => "default" in schema)
    .map(([name, schema]) => [name, schema.default]));
}

/** The allowed values of `model.property` (or of its items, for lists). */
export async function choices(model, property) {
  const document = await load();
  const schema = document.components.schemas[model].properties[property];
  const options = [schema, schema.items, ...(schema.anyOf || [])].filter(Boolean);
  for (const option of options) if (option.enum) return option.enum;
  throw new Error(`${model}.${property} has no enum in the OpenAPI document`);
}
