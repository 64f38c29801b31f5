-- Publishable keys for the widget and the public API, and visitor attachments.

CREATE TABLE agent_keys (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id       uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    agent_id         uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    -- sha256 of the key: keys are 32 random bytes, so a fast hash is enough
    -- and lets every public request find its key with one index lookup.
    key_hash         bytea NOT NULL UNIQUE,
    key_prefix       text NOT NULL,
    allowed_origins  text[] NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);
CREATE INDEX agent_keys_agent_idx ON agent_keys (company_id, agent_id, created_at);
SELECT syntera_enable_tenancy('agent_keys');

CREATE TABLE attachments (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id       uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    name             text NOT NULL,
    type             text NOT NULL,
    size             integer NOT NULL,
    data             bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_conversation_idx ON attachments (conversation_id);
SELECT syntera_enable_tenancy('attachments');
