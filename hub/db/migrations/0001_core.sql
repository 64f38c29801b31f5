-- The tenancy scheme, then the core tables.
--
-- The app's queries run as syntera_app (a tenant transaction does
-- SET LOCAL ROLE syntera_app). It is no superuser and has no BYPASSRLS, and
-- every tenant table has row-level security enabled and forced, so it sees
-- only the rows of the company in app.company_id. The role that runs the
-- migrations owns the tables and keeps full access through an explicit policy:
-- it is the role of sign-up, log-in and cross-tenant jobs.

DO $$
BEGIN
    CREATE ROLE syntera_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
EXCEPTION
    -- Roles are cluster-wide: another database may have created it, even concurrently.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'syntera_app', 'MEMBER') THEN
        EXECUTE format('GRANT syntera_app TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO syntera_app;

CREATE FUNCTION syntera_company_id() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('app.company_id', true), '')::uuid $$;

-- Puts a table under the tenancy scheme. Every later tenant table calls this
-- once in its migration: SELECT syntera_enable_tenancy('contacts');
CREATE FUNCTION syntera_enable_tenancy(tbl regclass, company_column text DEFAULT 'company_id')
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s TO syntera_app '
        'USING (%I = syntera_company_id()) WITH CHECK (%I = syntera_company_id())',
        tbl, company_column, company_column);
    EXECUTE format(
        'CREATE POLICY owner_access ON %s TO %I USING (true) WITH CHECK (true)',
        tbl, current_user);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO syntera_app', tbl);
END
$$;

CREATE TABLE companies (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
SELECT syntera_enable_tenancy('companies', 'id');

CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id     uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    email          text NOT NULL,
    name           text,
    role           text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    password_hash  text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_company_idx ON users (company_id);
SELECT syntera_enable_tenancy('users');

CREATE TABLE agents (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id      uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    name            text NOT NULL,
    description     text,
    system_prompt   text,
    model           text NOT NULL,
    temperature     double precision NOT NULL CHECK (temperature BETWEEN 0 AND 2),
    max_tokens      integer NOT NULL CHECK (max_tokens BETWEEN 1 AND 32000),
    enabled         boolean NOT NULL DEFAULT true,
    voice_settings  jsonb NOT NULL DEFAULT '{}',
    -- The function-calling tools this agent may use (agents_runtime/tools.py).
    tools           text[] NOT NULL DEFAULT '{}',
    -- The public profile the widget shows (never the system prompt).
    avatar_url      text,
    greeting        text,
    theme           jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_company_created_idx ON agents (company_id, created_at);
SELECT syntera_enable_tenancy('agents');

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    user_id      uuid,
    method       text NOT NULL,
    path         text NOT NULL,
    resource_id  text,
    status       integer NOT NULL,
    ip           text,
    request_id   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_company_created_idx ON audit_log (company_id, created_at DESC, id DESC);
SELECT syntera_enable_tenancy('audit_log');
