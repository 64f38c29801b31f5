// Sign up (a new company and its owner) and log in, with the hub's built-in accounts.

import { api } from "../api.js";
import { field, fill, h, statusLine } from "../dom.js";
import { session } from "../session.js";

export function mountAuth(root, mode) {
  const signup = mode === "signup";
  const status = statusLine();
  const inputs = {
    email: h("input", { type: "email", name: "email", autocomplete: "email", required: true }),
    password: h("input", {
      type: "password", name: "password", required: true, minlength: signup ? "8" : null,
      autocomplete: signup ? "new-password" : "current-password",
    }),
  };
  if (signup) {
    inputs.name = h("input", { type: "text", name: "name", autocomplete: "name", maxlength: "200" });
    inputs.company_name = h("input", { type: "text", name: "company_name", required: true, maxlength: "200", autocomplete: "organization" });
  }
  const submit = h("button", { type: "submit", class: "primary" }, signup ? "Create account" : "Log in");
  const form = h("form", { class: "auth-form", novalidate: false },
    signup ? field("Your name", inputs.name) : null,
    signup ? field("Company", inputs.company_name) : null,
    field("Email", inputs.email),
    field("Password", inputs.password, signup ? "At least 8 characters." : null),
    submit, status);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(Object.entries(inputs)
      .map(([name, input]) => [name, input.value.trim()])
      .filter(([, value]) => value !== ""));
    if (inputs.password.value) body.password = inputs.password.value; // passwords are not trimmed
    submit.disabled = true;
    status.say(signup ? "Creating your account…" : "Logging in…");
    try {
      session.start(await api.post(signup ? "/api/auth/signup" : "/api/auth/login", body));
    } catch (error) {
      status.error(error);
      submit.disabled = false;
    }
  });

  document.title = `${signup ? "Sign up" : "Log in"} · Syntera`;
  fill(root, h("main", { class: "auth", id: "main" },
    h("div", { class: "auth-card" },
      h("p", { class: "brand" }, "Syntera"),
      h("h1", {}, signup ? "Create your company's account" : "Log in to your dashboard"),
      form,
      signup
        ? h("p", {}, "Already have an account? ", h("a", { href: "#/login" }, "Log in"))
        : h("p", {}, "New here? ", h("a", { href: "#/signup" }, "Create an account")))));
  (signup ? inputs.name : inputs.email).focus();
}
